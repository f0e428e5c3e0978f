"""Who may see what. Clinicians are staff users in the "clinicians" group (or superusers)."""
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import SAFE_METHODS, BasePermission

CLINICIANS_GROUP = "clinicians"


def is_clinician(user):
    if not (user.is_authenticated and user.is_active):
        return False
    return user.is_superuser or (user.is_staff and user.groups.filter(name=CLINICIANS_GROUP).exists())


def can_view_photo(user, photo):
    """The patient whose appointment it is, or a clinician."""
    return user.is_authenticated and (photo.case.appointment.patient_id == user.pk or is_clinician(user))


def clinician_required(view):
    """Anonymous users go to the login page; signed-in non-clinicians get 403."""

    @login_required
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


class CanManageModelVersions(BasePermission):
    """DRF: reading model versions needs `triage.view_modelversion`, activating `triage.change_modelversion`
    (superusers have both; grant them to other admins in Django admin)."""

    def has_permission(self, request, view):
        needed = "triage.view_modelversion" if request.method in SAFE_METHODS else "triage.change_modelversion"
        return request.user.is_authenticated and request.user.has_perm(needed)
