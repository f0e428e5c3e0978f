"""`Idempotency-Key` on create and upload requests: a retry never makes a second booking or photo.

The first successful (2xx) response is stored with a fingerprint of the request; a repeat with the
same key gets that response again (header `Idempotent-Replayed: true`), a different request with
the same key gets 422. Concurrent repeats wait on the key's row until the first one commits.
Failed requests are not stored, so a corrected retry may reuse the key.
"""

import hashlib
import json
from functools import wraps

from django.db import IntegrityError, transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from portal.integrations.models import IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 100

IDEMPOTENCY_PARAMETER = OpenApiParameter(
    HEADER,
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    required=False,
    description="Any unique string (e.g. a UUID) per intended request; a retry with the same key and body "
    "returns the first response and makes nothing new.",
)


class _NotStored(Exception):
    def __init__(self, response):
        self.response = response


def request_fingerprint(request) -> str:
    """Path, form fields and each file's SHA-256 (multipart boundaries differ between retries)."""
    if hasattr(request.data, "getlist"):  # a form or multipart body
        fields = {name: request.data.getlist(name) for name in request.data if name not in request.FILES}
    else:  # parsed JSON, whatever its shape
        fields = request.data
    files = {}
    for name in request.FILES:
        digests = []
        for uploaded in request.FILES.getlist(name):
            digest = hashlib.sha256()
            for chunk in uploaded.chunks():
                digest.update(chunk)
            uploaded.seek(0)
            digests.append(digest.hexdigest())
        files[name] = digests
    canonical = json.dumps([request.method, request.path, fields, files], sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent(post):
    """Decorates a view's `post` that creates something; `request.auth` must be the integration's ApiKey."""

    @wraps(post)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return post(view, request, *args, **kwargs)
        if not 0 < len(key) <= MAX_KEY_LENGTH:
            raise ValidationError({HEADER: [f"Use 1–{MAX_KEY_LENGTH} characters."]})
        fingerprint = request_fingerprint(request)
        try:
            with transaction.atomic():
                try:
                    with transaction.atomic():
                        record = IdempotencyRecord.objects.create(
                            api_key=request.auth, key=key, fingerprint=fingerprint, response_status=0, response_body={}
                        )
                except IntegrityError:
                    return _replay(request.auth, key, fingerprint)
                response = post(view, request, *args, **kwargs)
                if not status.is_success(response.status_code):
                    raise _NotStored(response)
                record.response_status = response.status_code
                record.response_body = response.data
                record.save(update_fields=["response_status", "response_body"])
                return response
        except _NotStored as not_stored:
            return not_stored.response

    return wrapper


def _replay(api_key, key, fingerprint):
    record = IdempotencyRecord.objects.get(api_key=api_key, key=key)
    if record.fingerprint != fingerprint:
        return Response(
            {HEADER: [f"This key was used for a different request. Use a new {HEADER} for a new request."]},
            status=status.HTTP_422_UNPROCESSABLE_ENTITY,
        )
    return Response(record.response_body, status=record.response_status, headers={"Idempotent-Replayed": "true"})
