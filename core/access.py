"""The one way to refuse someone an object: record the refusal in the audit log, then raise.

Pages, the patient, staff and integration APIs and the FHIR interface all refuse through `deny`, so
every refusal has an audit row saying who asked, for what, which rule refused, from where. Django's
Http404 and PermissionDenied are answered 404 and 403 by Django and by DRF alike. The site's 403
handlers (`portal.errors`) audit a PermissionDenied raised elsewhere (a role check), and skip one
that `deny` has audited already.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404

from core.services import audit

_AUDITED = "_denial_audited"
ASKED_FOR_MAX_LENGTH = 200  # an id from a URL can be long; the audit row keeps its start


def deny(request, *, action, asked_for, rule, status=404, obj=None, actor=None, reference=None, message=None, **detail):
    """Audit that `request` was refused `asked_for` (e.g. "case 12", "appointment ABC123") under `rule`
    (a short name of the check that refused), then raise Http404 (status 404: never a hint that the
    object exists) or PermissionDenied (403). `action` is the audit action of the attempted access,
    `obj` the object asked for when it exists, `actor` the requester when it is not `request.user`
    (None for the user), `reference` the booking reference asked for, `message` the answer's text
    (the default one when None)."""
    if status not in (403, 404):
        raise ValueError("A denial answers 403 or 404.")
    record_denial(
        request, action=action, asked_for=asked_for, rule=rule, obj=obj, actor=actor, reference=reference, **detail
    )
    exception = Http404 if status == 404 else PermissionDenied
    raise exception(message) if message else exception()


def record_denial(request, *, action, asked_for, rule, obj=None, actor=None, reference=None, **detail):
    """The audit row of a refusal (allowed=False); the request is marked so that the 403 handlers
    do not write a second one."""
    who = actor if actor is not None else getattr(request, "user", None)
    audit(
        actor=who,
        action=action,
        obj=obj,
        allowed=False,
        request=request,
        reference=reference,
        asked_for=str(asked_for)[:ASKED_FOR_MAX_LENGTH],
        rule=rule,
        **detail,
    )
    setattr(_django_request(request), _AUDITED, True)


def denial_recorded(request):
    """Whether this request's refusal is in the audit log already."""
    return getattr(_django_request(request), _AUDITED, False)


def _django_request(request):
    return getattr(request, "_request", request)  # under a DRF Request, the HttpRequest it wraps
