"""Refuses, before anything reads them, request paths and query strings that hold control characters.

A NUL byte cannot be stored by PostgreSQL (in a text column or a JSON document), so a `%00` that reached
a lookup by id or the audit writer's copy of the filters turned a typing error or a probe into a 500. No
legitimate path or query string holds a control character, so the whole class is answered 400 here,
first in the middleware chain: no session is loaded, nothing is queried, nothing is stored.
"""

import logging
import re

from django.http import HttpResponseBadRequest, JsonResponse

from portal.fhir.protocol import FHIR_JSON
from portal.fhir.resources import operation_outcome
from portal.schema import API_PREFIX

logger = logging.getLogger(__name__)

# C0 controls (NUL, tab and newline included: none belongs in a path or a query string), DEL and C1 controls.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
FHIR_PREFIX = "/fhir/"
REFUSAL = "The address holds a control character (such as %00); remove it and try again."


def has_control_characters(text: str) -> bool:
    return CONTROL_CHARACTERS.search(text) is not None


def request_has_control_characters(request) -> bool:
    """The decoded path, or any query parameter name or value, holds a control character."""
    if has_control_characters(request.path_info):
        return True
    return any(
        has_control_characters(name) or any(has_control_characters(value) for value in values)
        for name, values in request.GET.lists()
    )


class RejectControlCharactersMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request_has_control_characters(request):
            logger.warning(
                "Refused a request with control characters in its address: %r", request.get_full_path()[:200]
            )
            if request.path.startswith(API_PREFIX):
                return JsonResponse({"detail": REFUSAL}, status=400)
            if request.path.startswith(FHIR_PREFIX):
                outcome = operation_outcome(severity="error", code="invalid", diagnostics=REFUSAL)
                return JsonResponse(outcome, status=400, content_type=FHIR_JSON)
            return HttpResponseBadRequest(REFUSAL, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
