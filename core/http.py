"""Where a request came from: the one place that reads the client's address."""


def client_address(request):
    """The client's IP address as this server sees it (REMOTE_ADDR), or None when there is none.

    Every reader of the address (the audit log, the API-key failure count) asks here, so that
    trusting a reverse proxy's header is one change in one place.
    """
    return request.META.get("REMOTE_ADDR") or None
