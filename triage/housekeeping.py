"""Celery side of triage operations: the data-retention sweep (beat). Worker heartbeats are
shared plumbing: `core.heartbeats`.

Imported by every worker through CELERY_IMPORTS; thin like `triage.tasks`, the writes are services.
"""

import logging

from celery import shared_task
from django.conf import settings

from triage import selectors, services
from triage.models import FileDeletionReason

logger = logging.getLogger(__name__)


@shared_task
def delete_expired_photo_files():
    """Beat task: delete photo and heatmap files past PHOTO_RETENTION_DAYS (see the service)."""
    deleted = services.delete_photo_files(photos=selectors.photos_past_retention(), reason=FileDeletionReason.RETENTION)
    if deleted:
        logger.info(
            "Deleted the files of %d photos past the %d-day retention period", deleted, settings.PHOTO_RETENTION_DAYS
        )
    return deleted
