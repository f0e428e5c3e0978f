"""The API's JSON parser (REST_FRAMEWORK's default): DRF's, with the limits a hostile body needs.

- Size: DRF reads the body stream itself, past Django's DATA_UPLOAD_MAX_MEMORY_SIZE check, so a JSON
  body larger than that setting is refused here (413) before it is read whole.
- Depth: `[[[[…` nested beyond JSON_MAX_DEPTH levels is a 400 (100,000 of them used to raise a
  RecursionError inside the json module: a 500).
- Text: a string (key or value) holding a NUL or another control character other than tab, newline and
  carriage return, or half of a UTF-16 surrogate pair, is a 400: PostgreSQL cannot store the first and
  the database driver cannot encode the last.
"""

import re

from django.conf import settings
from rest_framework import status
from rest_framework.exceptions import APIException, ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

# The API's bodies are at most three levels deep; this leaves room and still stops a stack-eating body.
JSON_MAX_DEPTH = 32
FORBIDDEN_IN_JSON_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class RequestBodyTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "The request body is too large."
    default_code = "too_large"


class LimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        raw = _read_within_limit(stream, parser_context.get("request"))
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            data = json.loads(raw.decode(encoding), parse_constant=json.strict_constant if self.strict else None)
        except RecursionError:
            raise ParseError(f"JSON parse error - nested more than {JSON_MAX_DEPTH} levels deep.")
        except ValueError as exc:  # UnicodeDecodeError included
            raise ParseError(f"JSON parse error - {exc}")
        check_json_document(data)
        return data


def _read_within_limit(stream, request):
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    if limit is None:
        return stream.read()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
    except ValueError:
        declared = 0
    if declared > limit:
        raise RequestBodyTooLarge(f"A JSON body may be at most {limit} bytes.")
    raw = stream.read(limit + 1)
    if len(raw) > limit:  # no or a false Content-Length
        raise RequestBodyTooLarge(f"A JSON body may be at most {limit} bytes.")
    return raw


def check_json_document(data):
    """ParseError for a document nested too deeply or holding a forbidden character in any string."""
    pending = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, (dict, list)):
            if depth > JSON_MAX_DEPTH:
                raise ParseError(f"JSON parse error - nested more than {JSON_MAX_DEPTH} levels deep.")
            if isinstance(value, dict):
                pending.extend((key, depth) for key in value)
                pending.extend((item, depth + 1) for item in value.values())
            else:
                pending.extend((item, depth + 1) for item in value)
        elif isinstance(value, str) and FORBIDDEN_IN_JSON_TEXT.search(value):
            raise ParseError("JSON parse error - a string holds a control character (such as \\u0000).")
