"""`Authorization: Api-Key <prefix>.<secret>` for integrations, with failed attempts throttled per address."""
from django.conf import settings
from django.core.cache import cache
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from core.http import client_address
from core.services import audit
from portal.integrations.models import ApiKey
from portal.integrations.selectors import api_key_by_prefix
from portal.integrations.services import record_api_key_use

KEYWORD = "Api-Key"


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """The key's own user becomes `request.user`, the `ApiKey` (with its clinic) `request.auth`.

    Each address gets API_KEY_FAILURE_LIMIT failed keys per API_KEY_FAILURE_WINDOW_SECONDS; after
    that it gets 429 until the window passes, even with a valid key (guessing is pointless).
    """

    def authenticate(self, request):
        words = authentication.get_authorization_header(request).split()
        if not words or words[0].decode(errors="replace").lower() != KEYWORD.lower():
            return None
        failures_key = f"api-key-failures:{client_address(request) or ''}"
        if cache.get(failures_key, 0) >= settings.API_KEY_FAILURE_LIMIT:
            raise exceptions.Throttled(wait=settings.API_KEY_FAILURE_WINDOW_SECONDS)
        api_key = self._valid_key(words)
        if api_key is None:
            cache.add(failures_key, 0, timeout=settings.API_KEY_FAILURE_WINDOW_SECONDS)
            cache.incr(failures_key)
            audit(actor=None, action="api_key_failed", obj=None, allowed=False, request=request)
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        record_api_key_use(api_key=api_key)
        return api_key.user, api_key

    def authenticate_header(self, request):
        return KEYWORD  # makes DRF answer 401 (not 403) without a key

    @staticmethod
    def _valid_key(words):
        if len(words) != 2:
            return None
        prefix, _, secret = words[1].decode(errors="replace").partition(".")
        api_key = api_key_by_prefix(prefix) if prefix and secret else None
        if api_key is None or api_key.is_revoked or not api_key.matches(secret):
            return None
        return api_key


class IsIntegration(BasePermission):
    """Authenticated with a live API key (its clinic is `request.auth.clinic`)."""

    def has_permission(self, request, view):
        return isinstance(request.auth, ApiKey)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`: a key made for one clinic in Django admin (Integrations → API keys).",
        }
