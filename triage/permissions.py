"""Who may see what. Clinicians are staff users in the "clinicians" group (or superusers)."""
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied

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
