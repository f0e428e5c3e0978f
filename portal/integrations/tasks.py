"""Celery: webhook deliveries.

Retry policy: a delivery that gets no 2xx answer is tried again after WEBHOOK_RETRY_BACKOFF_SECONDS
× 2^n, up to WEBHOOK_MAX_ATTEMPTS attempts in all; then it is marked failed (admin can redeliver).
The task is idempotent: a delivery already delivered is not sent again. Delivery is at least once
(a receiver dedupes on `X-Triage-Delivery`): `requeue_unsent_deliveries` (beat) queues again any
delivery never attempted WEBHOOK_REQUEUE_AFTER_SECONDS after it was made (the broker was down).
"""

import logging
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from portal.integrations.delivery import attempt_delivery, give_up
from portal.integrations.models import IdempotencyRecord, WebhookDelivery

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=None)
def deliver_webhook_task(self, delivery_id):
    delivery = WebhookDelivery.objects.select_related("endpoint").filter(pk=delivery_id).first()
    if delivery is None or delivery.status != WebhookDelivery.Status.PENDING:
        return
    if attempt_delivery(delivery):
        return
    if self.request.retries + 1 >= settings.WEBHOOK_MAX_ATTEMPTS:
        logger.warning("Webhook delivery %s failed for good (%s)", delivery_id, delivery.last_error)
        give_up(delivery)
        return
    countdown = settings.WEBHOOK_RETRY_BACKOFF_SECONDS * 2**self.request.retries
    logger.info("Webhook delivery %s failed (%s); retry in %s s", delivery_id, delivery.last_error, countdown)
    raise self.retry(countdown=countdown)


@shared_task
def purge_idempotency_records():
    """Idempotency keys are honoured for IDEMPOTENCY_KEY_TTL_HOURS (run by beat)."""
    cutoff = timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


@shared_task
def requeue_unsent_deliveries():
    cutoff = timezone.now() - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    unsent = list(
        WebhookDelivery.objects.filter(
            status=WebhookDelivery.Status.PENDING, attempts=0, created_at__lt=cutoff
        ).values_list("pk", flat=True)
    )
    for delivery_id in unsent:
        deliver_webhook_task.delay(delivery_id)
    return len(unsent)
