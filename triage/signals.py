"""Receivers: sign-ins, sign-outs and failed sign-ins go into the audit log beside photo and case
access; a newly flagged case is emailed to the on-duty staff of its site."""

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from core.services import audit
from triage import tasks
from triage.events import case_flagged


@receiver(case_flagged)
def email_staff_about_flagged_case(sender, case, **_):
    tasks.email_flagged_case(case.pk)


@receiver(user_logged_in)
def audit_login(sender, request, user, **_):
    audit(actor=user, action="login", obj=user, request=request)


@receiver(user_logged_out)
def audit_logout(sender, request, user, **_):
    if user is not None:
        audit(actor=user, action="logout", obj=user, request=request)


@receiver(user_login_failed)
def audit_failed_login(sender, credentials, request=None, **_):
    # Django has already masked the password in `credentials`; keep only the user name tried.
    audit(
        actor=None,
        action="login_failed",
        obj=None,
        allowed=False,
        request=request,
        username=credentials.get("username", ""),
    )
