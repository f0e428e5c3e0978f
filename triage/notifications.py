"""Emails: flagged cases and escalations to on-duty staff of the case's site, decisions to patients.

Staff emails carry the booking reference and a link, never the patient's name or photos; patient
emails carry what the clinic tells them, never a score. Sent by the tasks in `triage.tasks`.
"""

from datetime import timedelta

from django.conf import settings
from django.core.mail import send_mass_mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from triage.models import Case, Decision, Outcome
from triage.selectors import cases_due_for_escalation, clinic_leads, on_duty_staff


def email_flagged_case(case_id):
    """Tell the on-duty staff of the case's site that it was flagged. Returns the number of emails."""
    case = Case.objects.select_related(Case.booking_path("clinic")).get(pk=case_id)
    if case.outcome != Outcome.PENDING or not case.is_open:
        return 0  # decided or cancelled before the email went out
    subject = f"Flagged case {case.appointment.reference} at {case.clinic}"
    body = (
        f"A photo for appointment {case.appointment.reference} ({_when(case)}, {case.clinic}) scored at or above "
        f"the model's threshold. Please review it before the patient arrives:\n{_absolute(reverse('staff-case', args=[case.pk]))}"
    )
    return _send(subject, body, on_duty_staff(case.clinic_id))


def email_site_change(case_id, previous_site, decision_id):
    """Tell the on-duty staff of the case's (new) site that a decided case moved to them from
    `previous_site`, with the decision made there. Returns the number of emails."""
    case = Case.objects.select_related(Case.booking_path("clinic")).get(pk=case_id)
    decision = Decision.objects.get(pk=decision_id)
    subject = f"Decided case {case.appointment.reference} moved to {case.clinic}"
    action = f" ({decision.get_action_display()})" if decision.action else ""
    body = (
        f"The patient moved appointment {case.appointment.reference} from {previous_site} to {case.clinic}, "
        f"now {_when(case)}. It was decided for {previous_site}: {decision.get_outcome_display()}{action}. "
        f"Please check that this decision suits your site:\n{_absolute(reverse('staff-case', args=[case.pk]))}"
    )
    return _send(subject, body, on_duty_staff(case.clinic_id))


def escalate_due_cases(now=None):
    """Flagged cases still undecided ESCALATE_HOURS_BEFORE the appointment: email on-duty staff and
    the site's clinic leads, once per case. Returns the number of cases escalated."""
    now = now or timezone.now()
    escalated = 0
    for case in cases_due_for_escalation(now=now, within=timedelta(hours=settings.ESCALATE_HOURS_BEFORE)):
        if not Case.objects.filter(pk=case.pk, escalated_at__isnull=True).update(escalated_at=now):
            continue  # another beat run got there first
        subject = f"Undecided flagged case {case.appointment.reference}: appointment {_when(case)}"
        body = (
            f"The flagged case {case.appointment.reference} at {case.clinic} still has no decision and the "
            f"appointment is at {_when(case)}. Please decide now:\n{_absolute(reverse('staff-case', args=[case.pk]))}"
        )
        recipients = {user.pk: user for user in [*on_duty_staff(case.clinic_id), *clinic_leads(case.clinic_id)]}
        _send(subject, body, recipients.values())
        escalated += 1
    return escalated


def email_patient_decision(decision_id):
    """Tell the patient what the clinic decided for their visit (the instructions, never a score), in
    the language they booked in."""
    decision = Decision.objects.select_related(
        "case__appointment__patient", Case.booking_path("clinic", via="case__")
    ).get(pk=decision_id)
    appointment = decision.case.appointment
    link = _absolute(reverse("appointment", args=[appointment.reference]))
    with translation.override(appointment.language):
        words = {
            "reference": appointment.reference,
            "when": _when(decision.case),
            "link": link,
            "message": decision.patient_message,
        }
        if decision.outcome == Outcome.RETAKE:
            subject = _("Please send a new photo for your appointment %(reference)s") % words
            body = (
                _(
                    "The clinic needs a new photo before your visit on %(when)s:\n\n%(message)s\n\n"
                    "Send it here: %(link)s"
                )
                % words
            )
        else:
            subject = _("Your appointment %(reference)s: what to do") % words
            body = (
                _(
                    "The clinic has reviewed your photos for your visit on %(when)s.\n\n%(message)s\n\n"
                    "Your appointment: %(link)s"
                )
                % words
            )
    return _send(subject, body, [appointment.patient])


def _send(subject, body, users):
    """One message per recipient, so no one sees the other addresses."""
    messages = [(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email]) for user in users if user.email]
    return send_mass_mail(messages, fail_silently=False) if messages else 0


def _when(case):
    return date_format(timezone.localtime(case.appointment.starts_at), "l j F, H:i")


def _absolute(path):
    return settings.PORTAL_BASE_URL.rstrip("/") + path
