"""The FHIR wire protocol for every view of this app: `application/fhir+json` in and out, the
integration's API key, and an OperationOutcome for every error (never an HTML page or a traceback)."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from portal.errors import audit_api_refusal
from portal.fhir.resources import operation_outcome
from portal.integrations.authentication import KEYWORD, ApiKeyAuthentication, IsIntegration

logger = logging.getLogger(__name__)

FHIR_JSON = "application/fhir+json"


def max_body_bytes():
    """The largest body accepted: a photo of PHOTO_MAX_BYTES as base64 (4/3 as long), plus 1 MiB for the rest."""
    return settings.PHOTO_MAX_BYTES * 4 // 3 + 1024 * 1024


class FhirJsonRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "json"
    charset = "utf-8"


class FhirJsonParser(JSONParser):
    media_type = FHIR_JSON


class AlwaysFhirJson(BaseContentNegotiation):
    """Every answer is FHIR JSON whatever `Accept` says (FHIR clients send several spellings); request
    bodies may be `application/fhir+json` or `application/json`."""

    def select_parser(self, request, parsers):
        content_type = request.content_type.split(";")[0].strip().lower()
        return next((parser for parser in parsers if parser.media_type == content_type), None)

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


# DRF's errors as (HTTP status, FHIR issue type).
_ISSUE_TYPES = {
    exceptions.NotAuthenticated: "login",
    exceptions.AuthenticationFailed: "login",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not-found",
    exceptions.MethodNotAllowed: "not-supported",
    exceptions.UnsupportedMediaType: "not-supported",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "structure",
}


class FhirInputError(exceptions.APIException):
    """A request the server understood but cannot accept; `issue_type` is a FHIR IssueType code."""

    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message, *, issue_type="invalid", status_code=None, expression=None):
        super().__init__(message)
        self.issue_type = issue_type
        self.expression = expression
        if status_code is not None:
            self.status_code = status_code


def fhir_exception_handler(exc, context):
    """Every error as an OperationOutcome: 4xx with the reason in words; anything unexpected is logged
    and answered 500 without details."""
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    audit_api_refusal(exc, context["request"])
    if isinstance(exc, DjangoValidationError):  # a booking or triage rule refused the request
        exc = FhirInputError(" ".join(exc.messages), issue_type="business-rule", status_code=422)
    if isinstance(exc, FhirInputError):
        return _outcome_response(exc.status_code, exc.issue_type, str(exc.detail), exc.expression)
    if isinstance(exc, exceptions.APIException):
        issue_type = next((code for kind, code in _ISSUE_TYPES.items() if isinstance(exc, kind)), "invalid")
        response = _outcome_response(exc.status_code, issue_type, _words(exc.detail))
        if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
            response.status_code = status.HTTP_401_UNAUTHORIZED
            response["WWW-Authenticate"] = KEYWORD
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    logger.exception("Unexpected error in the FHIR interface")
    return _outcome_response(500, "exception", "The server could not handle this request; it has been logged.")


def _words(detail):
    if isinstance(detail, dict):
        return " ".join(f"{field}: {_words(value)}" for field, value in detail.items())
    if isinstance(detail, list):
        return " ".join(_words(item) for item in detail)
    return str(detail)


def _outcome_response(status_code, issue_type, message, expression=None):
    severity = "fatal" if status_code >= 500 else "error"
    return Response(
        operation_outcome(severity=severity, code=issue_type, diagnostics=message, expression=expression),
        status=status_code,
    )


class FhirView(APIView):
    """Base of every FHIR endpoint: the key's clinic is `self.clinic`; nothing here is in the OpenAPI schema."""

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsIntegration]
    renderer_classes = [FhirJsonRenderer]
    parser_classes = [FhirJsonParser, JSONParser]
    content_negotiation_class = AlwaysFhirJson
    schema = None

    @property
    def clinic(self):
        return self.request.auth.clinic

    def get_exception_handler(self):
        return fhir_exception_handler

    def permission_denied(self, request, message=None, code=None):
        if request.authenticators and not request.successful_authenticator:
            raise exceptions.NotAuthenticated("Send the clinic's key: `Authorization: Api-Key <key>`.")
        raise exceptions.PermissionDenied(message or "This key may not do that.")

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        length = request.META.get("CONTENT_LENGTH") or "0"
        if length.isdigit() and int(length) > max_body_bytes():
            raise FhirInputError(
                f"The request body is larger than {max_body_bytes()} bytes.", issue_type="too-costly", status_code=413
            )

    def body(self):
        """The request body as a JSON object (a FHIR resource)."""
        data = self.request.data
        if not isinstance(data, dict):
            raise FhirInputError("The body must be a FHIR resource (a JSON object).", issue_type="structure")
        return data
