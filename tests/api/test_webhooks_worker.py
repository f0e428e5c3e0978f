"""Webhooks end to end with a real Celery worker on the configured broker: a decision recorded through
the staff API reaches a real receiver on 127.0.0.1, signed; a 500 is retried after the backoff."""

import hmac

import pytest
from django.urls import reverse

from portal.celery import app as celery_app
from portal.integrations.models import WebhookDelivery, WebhookEndpoint
from portal.integrations.signing import verify
from tests.workers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

BACKOFF_SECONDS = 1.0


@pytest.fixture
def webhook_worker(start_worker, settings):
    """A real worker that retries failed deliveries after BACKOFF_SECONDS; its log path."""
    celery_app.control.purge()
    return start_worker(settings.CELERY_BROKER_URL, WEBHOOK_RETRY_BACKOFF_SECONDS=str(BACKOFF_SECONDS)).log_path


def test_decision_webhook_is_signed_and_retried_by_the_worker(
    webhook_worker, receiver, clinic, prediction, clinician, client
):
    endpoint = WebhookEndpoint.objects.create(clinic=clinic, url=receiver.url, events=["case.decided"])
    receiver.codes = [500]
    client.force_login(clinician)
    case = prediction.photo.case
    response = client.post(
        reverse("api-staff-decide", args=[case.pk]),
        {"outcome": "suspected", "action": "isolation_room"},
        content_type="application/json",
    )
    assert response.status_code == 201

    wait_for(lambda: len(receiver.requests) >= 2, 60, "a retried delivery", webhook_worker)
    first, second = receiver.requests[:2]
    assert first["body"] == second["body"]
    assert second["at"] - first["at"] >= BACKOFF_SECONDS * 0.9  # waited for the backoff, not retried at once
    for request in (first, second):
        assert verify(endpoint.secret, request["headers"]["X-Triage-Signature"], request["body"])
    assert second["json"]["data"]["decision"]["outcome"] == "suspected"
    wait_for(lambda: WebhookDelivery.objects.get().status == "delivered", 30, "the delivery log", webhook_worker)
    delivery = WebhookDelivery.objects.get()
    assert (delivery.attempts, delivery.response_code) == (2, 200)
    assert hmac.compare_digest(str(delivery.event_id), first["headers"]["X-Triage-Delivery"])
