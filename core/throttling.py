"""DRF throttles count anonymous clients by `core.http.client_address`, like everything else that
counts by address (DRF's own NUM_PROXIES is not used)."""

from rest_framework.throttling import ScopedRateThrottle

from core.http import client_address


class ClientAddressThrottleMixin:
    def get_ident(self, request):
        return client_address(request) or ""


class ClientAddressScopedRateThrottle(ClientAddressThrottleMixin, ScopedRateThrottle):
    """ScopedRateThrottle (per user, or per client address for anonymous requests)."""
