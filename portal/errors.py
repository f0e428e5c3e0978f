"""Site-wide error pages. Under /api/ a client gets JSON (`{"detail": ...}`) even when no API view
was reached, e.g. for a malformed id in the URL; everywhere else HTML pages.

Every 403, on a page or from the API (a signed-in user where their role does not allow, e.g. a
patient on a staff page), is an audited denial: one that `core.access.deny` raised is audited there,
any other here.

A database outage (PostgreSQL restarting, a dropped connection) is the one server error a patient
can do something about: wait and try again. It answers 503 with a Retry-After header and a plain
page; any other uncaught error keeps a 500. Neither shows a traceback, and neither touches the
database (no session, no user) so it renders while the database is down.
"""

import sys

from django.core.exceptions import PermissionDenied
from django.db import InterfaceError, OperationalError
from django.http import HttpResponse, HttpResponseServerError, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import exceptions
from rest_framework.views import exception_handler

from core.access import denial_recorded, record_denial
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
        response = (
            JsonResponse({"detail": "Temporarily unavailable; try again in a minute."}, status=503)
            if api
            else HttpResponse(render_to_string("503.html"), status=503)
        )
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response
    return (
        JsonResponse({"detail": "Server error."}, status=500)
        if api
        else HttpResponseServerError(render_to_string("500.html"))
    )


def permission_denied(request, exception):
    """handler403: audit the denial (unless `deny` did), then Django's 403 page."""
    if not denial_recorded(request):
        record_denial(request, action="denied_page", asked_for=request.path, rule="role")
    return defaults.permission_denied(request, exception)


def audit_api_refusal(exc, request):
    """An API's 403 for a signed-in requester (a permission class refused) is audited like a page's."""
    refused = isinstance(exc, (PermissionDenied, exceptions.PermissionDenied))
    if refused and request is not None and request.user.is_authenticated and not denial_recorded(request):
        record_denial(request, action="denied_api", asked_for=request.path, rule="role")


def api_exception_handler(exc, context):
    """REST_FRAMEWORK's EXCEPTION_HANDLER: DRF's answers, with every 403 audited."""
    audit_api_refusal(exc, context["request"])
    return exception_handler(exc, context)
