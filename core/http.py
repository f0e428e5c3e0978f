"""Where a request came from: the one place that reads the client's address.

Behind reverse proxies the peer (REMOTE_ADDR) is the nearest proxy, and each proxy appends the
address it received the request from to X-Forwarded-For. With TRUSTED_PROXY_COUNT = N (the proxies
in front of the portal that we run, 0 by default) the client is the N-th entry from the right; the
entries further left were written by the client or by proxies we do not run, so they are never read.
"""

import ipaddress

from django.conf import settings


def client_address(request):
    """The client's IP address, or None when the server saw none.

    Every reader of the address asks here: the audit log, the API-key failure count, django-axes
    (AXES_CLIENT_IP_CALLABLE), django-ratelimit (RATELIMIT_IP_META_KEY) and the DRF throttles
    (`core.throttling`). A chain shorter than TRUSTED_PROXY_COUNT, or a malformed entry where the
    client's address should be, means the request did not come through our proxies as expected: the
    peer's address is used then, never a value the client chose.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    hops = settings.TRUSTED_PROXY_COUNT
    if hops == 0:
        return peer
    chain = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if entry.strip()]
    if len(chain) < hops:
        return peer
    return _plain_address(chain[-hops]) or peer


def _plain_address(text):
    """The address written in `text` in its canonical form, or None when it is not an IP address."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None
