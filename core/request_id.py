"""Request ids: one id per web request, carried into the Celery tasks it queues and onto every
log line of both (see LOGGING in settings and the signal handlers in `portal.celery`)."""

import contextvars
import logging
import re
import uuid

REQUEST_ID_HEADER = "X-Request-ID"
# A proxy's id is reused only when it is short and plain, so it cannot forge log lines.
_ACCEPTED_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

_request_id = contextvars.ContextVar("request_id", default=None)


def current_request_id():
    return _request_id.get()


def set_request_id(request_id):
    """Make `request_id` (or none) current for this thread or task; returns a token for reset."""
    return _request_id.set(request_id)


def reset_request_id(token):
    _request_id.reset(token)


class RequestIdMiddleware:
    """Adopt the proxy's X-Request-ID when it is well formed, else make one; echo it in the response."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request.request_id = incoming if _ACCEPTED_ID.match(incoming) else uuid.uuid4().hex
        token = set_request_id(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_request_id(token)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` ("-" outside a request or task) to every record."""

    def filter(self, record):
        record.request_id = current_request_id() or "-"
        return True
