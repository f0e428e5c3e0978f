"""Celery tasks: thin wrappers that take ids, reload state and call `triage.analysis`."""
import logging
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from . import analysis
from .models import Photo

logger = logging.getLogger(__name__)

RETRYABLE_ERRORS = (OperationalError, InterfaceError)


@worker_init.connect
def import_ml_before_forking(**_):
    """Import torch once in the parent so each pool process starts in seconds, not tens of seconds."""
    import ml  # noqa: F401


@worker_process_init.connect
def prepare_worker_process(**_):
    """Each forked pool process sets its own torch threads and loads the model once.

    Without this, CPU PyTorch in a forked child can hang, and N children each using
    every core oversubscribe the machine.
    """
    import torch

    torch.set_num_threads(settings.WORKER_TORCH_THREADS)
    connections.close_all()
    try:
        model_version = analysis.preload_active_model()
    except Exception:  # a broken checkpoint must not stop the worker; tasks will report it
        logger.exception("Could not preload the active model")
    else:
        logger.info("Worker process ready with model %s", model_version)


@worker_ready.connect
def requeue_on_worker_start(**_):
    requeue_stalled_photos.delay()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=RETRYABLE_ERRORS,
    retry_backoff=5,
    max_retries=5,
)
def analyse_photos_task(self, photo_ids, requested_by_id=None):
    """Analyse a batch of photos of one case. Re-running it skips photos already analysed."""
    try:
        analysis.analyse_photos(photo_ids, requested_by_id=requested_by_id)
    except SoftTimeLimitExceeded:
        analysis.mark_failed(photo_ids, "The analysis took too long. It will be retried automatically.")
        raise
    except RETRYABLE_ERRORS:
        raise
    except Exception as exc:
        logger.exception("Analysis of photos %s failed", photo_ids)
        if self.request.retries < 2:
            raise self.retry(exc=exc, countdown=10)
        analysis.mark_failed(photo_ids, f"The analysis failed ({type(exc).__name__}). Staff have been told.")
        raise


@shared_task(acks_late=True)
def requeue_stalled_photos():
    """Re-enqueue photos whose task was lost (broker restarted, worker killed, no model then)."""
    now = timezone.now()
    received_before = now - timedelta(seconds=settings.ANALYSIS_REQUEUE_AFTER_SECONDS)
    analysing_before = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT * 2)
    stalled = Photo.objects.filter(status=Photo.Status.RECEIVED, updated_at__lt=received_before) | Photo.objects.filter(
        status=Photo.Status.ANALYSING, updated_at__lt=analysing_before
    )
    if analysis.active_model_version() is not None:
        stalled = stalled | Photo.objects.filter(status=Photo.Status.NO_MODEL)
    photos = list(stalled.order_by("case_id", "pk"))
    for case_photos in _by_case(photos):
        analyse_photos_task.delay([photo.pk for photo in case_photos])
    return len(photos)


def enqueue_analysis(photos, requested_by=None):
    """Queue analysis once the current transaction commits: one task per case, all its photos in one batch.

    If the broker is unreachable the photos stay RECEIVED and `requeue_stalled_photos`
    picks them up later; the patient's upload is never lost.
    """
    photos = [photos] if isinstance(photos, Photo) else list(photos)
    requested_by_id = requested_by.pk if requested_by is not None else None

    def send():
        for case_photos in _by_case(photos):
            try:
                analyse_photos_task.delay([photo.pk for photo in case_photos], requested_by_id)
            except Exception:
                logger.exception("Could not queue analysis of photos %s; they will be re-queued", case_photos)

    transaction.on_commit(send)


def _by_case(photos):
    groups = {}
    for photo in photos:
        groups.setdefault(photo.case_id, []).append(photo)
    return list(groups.values())
