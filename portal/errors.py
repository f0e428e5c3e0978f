"""Site-wide error pages. Under /api/ a client gets JSON (`{"detail": ...}`) even when no API view
was reached, e.g. for a malformed id in the URL; everywhere else HTML pages.

Every 403 (a signed-in user on a page their role does not allow, e.g. a patient on a staff page) is
an audited denial.

A database outage (PostgreSQL restarting, a dropped connection) is the one server error a patient
can do something about: wait and try again. It answers 503 with a Retry-After header and a plain
page; any other uncaught error keeps a 500. Neither shows a traceback, and neither touches the
database (no session, no user) so it renders while the database is down.
"""
import sys

from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults

from core.services import audit
from portal.schema import API_PREFIX

DATABASE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 60


def page_not_found(request, exception):
    if request.path.startswith(API_PREFIX):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """handler500: Django calls it inside its `except` block, so the exception is sys.exc_info()'s."""
    api = request.path.startswith(API_PREFIX)
    if isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        response = (JsonResponse({"detail": "Temporarily unavailable; try again in a minute."}, status=503) if api
                    else HttpResponse(render_to_string("503.html"), status=503))
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return JsonResponse({"detail": "Server error."}, status=500) if api else HttpResponseServerError(render_to_string("500.html"))


def permission_denied(request, exception):
    """handler403: audit the denial, then Django's 403 page."""
    audit(actor=request.user, action="denied_page", obj=None, allowed=False, request=request, path=request.path)
    return defaults.permission_denied(request, exception)
