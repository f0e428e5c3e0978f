"""Celery tasks: thin wrappers that take ids, reload state and call `triage.analysis`.

Delivery (settings, one place for every task): JSON only, acknowledged late and rejected when the
worker is lost, so a task whose worker dies is delivered again; tasks are idempotent (a re-run
skips photos already analysed).

Emails (flagged cases, escalations, decisions to patients) retry on connection errors
(OSError, which includes SMTP errors) with exponential backoff, EMAIL_MAX_RETRIES times.

Analysis retry policy (one, for every error but the time limit): a failed analysis is retried up to
ANALYSIS_MAX_RETRIES times with exponential backoff (ANALYSIS_RETRY_BACKOFF_SECONDS × 2^n); then its
photos are marked failed with a reason the clinician sees. A database outage outlasting the retries
leaves the photos analysing; `requeue_stalled_photos` picks them up.
"""
import logging
from datetime import timedelta

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from triage import analysis, notifications, registry
from triage.models import Photo

logger = logging.getLogger(__name__)


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
    import ml

    ml.configure_threads(settings.WORKER_TORCH_THREADS)
    connections.close_all()
    try:
        model_version = registry.preload_active_model()
    except Exception:  # a broken checkpoint must not stop the worker; tasks will report it
        logger.exception("Could not preload the active model")
    else:
        logger.info("Worker process ready with model %s", model_version)


@worker_ready.connect
def requeue_on_worker_start(**_):
    requeue_stalled_photos.delay()


@shared_task(bind=True)
def analyse_photos_task(self, photo_ids, requested_by_id=None):
    """Analyse a batch of photos of one case. Re-running it skips photos already analysed."""
    try:
        analysis.analyse_photos(photo_ids, requested_by_id=requested_by_id)
    except SoftTimeLimitExceeded:
        analysis.mark_failed(photo_ids, "The analysis took too long. A clinician can run it again.")
        raise
    except Exception as exc:
        if self.request.retries < settings.ANALYSIS_MAX_RETRIES:
            countdown = settings.ANALYSIS_RETRY_BACKOFF_SECONDS * 2**self.request.retries
            logger.warning("Analysis of photos %s failed (%r); retry in %s s", photo_ids, exc, countdown)
            raise self.retry(exc=exc, countdown=countdown)
        logger.exception("Analysis of photos %s failed for good", photo_ids)
        analysis.mark_failed(photo_ids, f"The analysis failed ({type(exc).__name__}). Staff have been told.")
        raise


@shared_task
def requeue_stalled_photos():
    """Re-enqueue photos whose task was lost (broker restarted, worker killed, no model then)."""
    now = timezone.now()
    received_before = now - timedelta(seconds=settings.ANALYSIS_REQUEUE_AFTER_SECONDS)
    analysing_before = now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT * 2)
    stalled = Photo.objects.filter(status=Photo.Status.RECEIVED, updated_at__lt=received_before) | Photo.objects.filter(
        status=Photo.Status.ANALYSING, updated_at__lt=analysing_before
    )
    if registry.active_model_version() is not None:
        stalled = stalled | Photo.objects.filter(status=Photo.Status.NO_MODEL)
    photos = list(stalled.order_by("case_id", "pk"))
    for case_photos in _by_case(photos):
        analyse_photos_task.delay([photo.pk for photo in case_photos])
    return len(photos)


EMAIL_TASK_OPTIONS = dict(autoretry_for=(OSError,), retry_backoff=30, max_retries=settings.EMAIL_MAX_RETRIES)


@shared_task(**EMAIL_TASK_OPTIONS)
def email_flagged_case_task(case_id):
    return notifications.email_flagged_case(case_id)


@shared_task(**EMAIL_TASK_OPTIONS)
def email_patient_decision_task(decision_id):
    return notifications.email_patient_decision(decision_id)


@shared_task
def escalate_flagged_cases():
    """Run by beat: flagged cases still undecided shortly before the appointment are escalated."""
    return notifications.escalate_due_cases()


def email_patient_decision_on_commit(decision):
    decision_id = decision.pk
    transaction.on_commit(lambda: _send_task(email_patient_decision_task, decision_id))


def email_flagged_case(case_id):
    """Queue the on-duty staff email (called after the flag was committed)."""
    _send_task(email_flagged_case_task, case_id)


def _send_task(task, *args):
    """A broker outage must not undo the write that triggered the email; it is logged instead
    (a flagged case left undecided is still escalated by beat)."""
    try:
        task.delay(*args)
    except Exception:
        logger.exception("Could not queue %s%s", task.name, args)


def enqueue_analysis(photos, requested_by=None):
    """Queue analysis once the current transaction commits: one task per case, all its photos in one batch.

    If the broker is unreachable the photos stay RECEIVED and `requeue_stalled_photos`
    picks them up later; the patient's upload is never lost.
    """
    photos = list(photos)
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
