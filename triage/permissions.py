"""Who may see what: roles are Django groups with permissions (made by a data migration from
ROLE_PERMISSIONS), and clinicians see only the cases of the clinic sites they belong to."""

from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

from triage.models import SiteMembership

PATIENTS_GROUP = "patients"
CLINICIANS_GROUP = "clinicians"
CLINIC_LEADS_GROUP = "clinic leads"
AUDITORS_GROUP = "auditors"
ADMINS_GROUP = "admins"

REVIEW = "triage.review_cases"
DECIDE = "triage.decide_cases"
EXPORT = "triage.export_decisions"
ALL_SITES = "triage.see_all_sites"

_READ_RECORDS = [
    "triage.view_case",
    "triage.view_photo",
    "triage.view_prediction",
    "triage.view_decision",
    "core.view_auditevent",
    "registry.view_modelversion",
    "triage.view_sitemembership",
    "triage.view_labresult",
    "triage.view_finaldiagnosis",
    "registry.view_modelpromotion",
]
# "app_label.codename" per group; ALL means every permission there is.
ALL = "*"
ROLE_PERMISSIONS = {
    PATIENTS_GROUP: [],
    CLINICIANS_GROUP: [REVIEW, DECIDE],
    CLINIC_LEADS_GROUP: [REVIEW, DECIDE, EXPORT],
    AUDITORS_GROUP: [REVIEW, ALL_SITES, *_READ_RECORDS],  # read-only: sees everything, decides nothing
    ADMINS_GROUP: [ALL],
}


def install_roles(apps, roles=None):
    """Create the role groups with their permissions (`roles`, by default ROLE_PERMISSIONS); `apps` is
    a migration's app registry or django.apps.apps. Safe to run again (groups get exactly the listed
    permissions)."""
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():  # a data migration runs before post_migrate makes them
        app_config.models_module = True
        create_permissions(app_config, verbosity=0, apps=apps)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in (roles or ROLE_PERMISSIONS).items():
        group, _ = Group.objects.get_or_create(name=name)
        if perms == [ALL]:
            group.permissions.set(Permission.objects.all())
            continue
        wanted = [perm.split(".", 1) for perm in perms]
        group.permissions.set(
            [Permission.objects.get(content_type__app_label=app, codename=codename) for app, codename in wanted]
        )


def can_review(user):
    """Staff pages (queue, case pages): clinicians, clinic leads, auditors, admins."""
    return user.is_authenticated and user.is_active and user.has_perm(REVIEW)


def is_clinician(user):
    """May claim cases and record decisions (clinicians, clinic leads, admins)."""
    return can_review(user) and user.has_perm(DECIDE)


def can_export(user):
    return can_review(user) and user.has_perm(EXPORT)


def sees_all_sites(user):
    return user.has_perm(ALL_SITES)


def staff_site_ids(user):
    """The clinic sites whose cases `user` sees; None means every site."""
    if sees_all_sites(user):
        return None
    return set(SiteMembership.objects.filter(user=user).values_list("clinic_id", flat=True))


def can_view_case(user, case):
    if not can_review(user):
        return False
    site_ids = staff_site_ids(user)
    return site_ids is None or case.clinic_id in site_ids


def can_view_photo(user, photo):
    """The patient whose appointment it is, or staff of the case's site."""
    return user.is_authenticated and (photo.case.appointment.patient_id == user.pk or can_view_case(user, photo.case))


def staff_required(view):
    """Anonymous users go to the login page; signed-in users without the review permission get 403."""

    @login_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not can_review(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def clinician_required(view):
    """As staff_required, and the user may record decisions."""

    @staff_required
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not is_clinician(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


class IsClinician(BasePermission):
    """DRF: the same rule as `clinician_required`."""

    def has_permission(self, request, view):
        return is_clinician(request.user)


class CanReview(BasePermission):
    """DRF: the same rule as `staff_required` (auditors included: they read every site's cases)."""

    def has_permission(self, request, view):
        return can_review(request.user)


class ReadsAsReviewerWritesAsClinician(BasePermission):
    """DRF: reading needs `can_review` (auditors read), recording needs `is_clinician` (auditors decide nothing)."""

    def has_permission(self, request, view):
        return can_review(request.user) if request.method in SAFE_METHODS else is_clinician(request.user)
