"""`Authorization: Api-Key <prefix>.<secret>` for integrations, with failed attempts throttled per client
address and per key prefix."""

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
PREFIX_MAX_LENGTH = ApiKey._meta.get_field("prefix").max_length


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """The key's own user becomes `request.user`, the `ApiKey` (with its clinic) `request.auth`.

    Failed keys are counted per client address (`core.http.client_address`) and per key prefix, each
    up to API_KEY_FAILURE_LIMIT per API_KEY_FAILURE_WINDOW_SECONDS. An address over its limit gets
    429 until the window passes, even with a valid key (guessing is pointless); so does a prefix over
    its limit (its secret is being guessed, or its integration is broken), whatever the address. A
    broken integration therefore locks out itself and its own address, never the other clinics.
    """

    def authenticate(self, request):
        words = authentication.get_authorization_header(request).split()
        if not words or words[0].decode(errors="replace").lower() != KEYWORD.lower():
            return None
        prefix, secret = self._prefix_and_secret(words)
        counters = [f"api-key-failures:address:{client_address(request) or ''}"]
        if prefix:
            counters.append(f"api-key-failures:prefix:{prefix}")
        if any(cache.get(counter, 0) >= settings.API_KEY_FAILURE_LIMIT for counter in counters):
            raise exceptions.Throttled(wait=settings.API_KEY_FAILURE_WINDOW_SECONDS)
        api_key = self._valid_key(prefix, secret)
        if api_key is None:
            for counter in counters:
                cache.add(counter, 0, timeout=settings.API_KEY_FAILURE_WINDOW_SECONDS)
                cache.incr(counter)
            audit(actor=None, action="api_key_failed", obj=None, allowed=False, request=request, prefix=prefix)
            raise exceptions.AuthenticationFailed("Invalid or revoked API key.")
        record_api_key_use(api_key=api_key)
        return api_key.user, api_key

    def authenticate_header(self, request):
        return KEYWORD  # makes DRF answer 401 (not 403) without a key

    @staticmethod
    def _prefix_and_secret(words):
        """The key's prefix (when it has the shape of one) and its secret; ("", "") for anything else."""
        if len(words) != 2:
            return "", ""
        prefix, _, secret = words[1].decode(errors="replace").partition(".")
        if not secret or not 0 < len(prefix) <= PREFIX_MAX_LENGTH or not prefix.isalnum() or not prefix.isascii():
            return "", ""
        return prefix, secret

    @staticmethod
    def _valid_key(prefix, secret):
        api_key = api_key_by_prefix(prefix) if prefix else None
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
