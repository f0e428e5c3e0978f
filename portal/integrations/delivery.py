"""One attempt at delivering a webhook: POST the signed JSON body, record what happened."""

import json
import urllib.error
import urllib.request

from django.conf import settings
from django.utils import timezone

from portal.integrations.models import WebhookDelivery
from portal.integrations.signing import SIGNATURE_HEADER, signature_header


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is a failed delivery: the signed POST is never re-sent elsewhere."""

    def redirect_request(self, *args, **kwargs):
        return None


_opener = urllib.request.build_opener(_NoRedirects)


def delivery_body(delivery) -> bytes:
    """The exact bytes that are signed and sent; the same on every attempt."""
    return json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()


def attempt_delivery(delivery: WebhookDelivery) -> bool:
    """POST once; a 2xx answer marks the delivery delivered. Returns whether it was."""
    body = delivery_body(delivery)
    request = urllib.request.Request(
        delivery.endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": delivery.endpoint.content_type,
            "User-Agent": "mpox-triage-webhooks/1",
            "X-Triage-Event": delivery.event_type,
            "X-Triage-Delivery": str(delivery.event_id),
            SIGNATURE_HEADER: signature_header(delivery.endpoint.secret, body),
        },
    )
    response_code, error = None, ""
    try:
        with _opener.open(request, timeout=settings.WEBHOOK_TIMEOUT_SECONDS) as response:
            response_code = response.status
    except urllib.error.HTTPError as http_error:
        response_code, error = http_error.code, f"HTTP {http_error.code}"
    except (urllib.error.URLError, OSError) as network_error:
        error = str(getattr(network_error, "reason", network_error))
    delivered = response_code is not None and 200 <= response_code < 300
    now = timezone.now()
    delivery.attempts += 1
    delivery.response_code = response_code
    delivery.last_error = error[:300]
    delivery.last_attempt_at = now
    if delivered:
        delivery.status = WebhookDelivery.Status.DELIVERED
        delivery.delivered_at = now
    delivery.save(
        update_fields=["attempts", "response_code", "last_error", "last_attempt_at", "status", "delivered_at"]
    )
    return delivered


def give_up(delivery: WebhookDelivery):
    delivery.status = WebhookDelivery.Status.FAILED
    delivery.save(update_fields=["status"])
