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

Recovery: `requeue_stalled_photos` (beat, every ANALYSIS_REQUEUE_INTERVAL_SECONDS, and each worker at
start-up) queues again what a broker outage or a dead worker left behind; `selectors.photos_to_requeue`
says which photos those are.
"""

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init, worker_process_init, worker_ready
from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone

from registry import versions
from triage import analysis, notifications, selectors
from triage.models import Photo, PhotoReason
from triage.photo_status import change_status

logger = logging.getLogger(__name__)


# Whether this worker consumes the inference queue; set in the main process before the pool forks.
_serves_inference = False


@worker_init.connect
def import_ml_before_forking(sender, **_):
    """On inference workers, import the model runtime (ONNX Runtime or torch, settings.ML_RUNTIME)
    once in the parent so each pool process starts in seconds. Light workers never import it."""
    global _serves_inference
    _serves_inference = settings.INFERENCE_QUEUE in sender.app.amqp.queues.consume_from
    if _serves_inference:
        versions.runtime()


@worker_process_init.connect
def prepare_worker_process(**_):
    """Each forked pool process of an inference worker sets its own runtime threads and loads the model once.

    Without this, CPU PyTorch in a forked child can hang, and N children each using
    every core oversubscribe the machine.
    """
    if not _serves_inference:
        return
    versions.runtime().configure_threads(settings.WORKER_TORCH_THREADS)
    connections.close_all()
    try:
        model_version = versions.preload_active_model()
    except Exception:  # a broken checkpoint must not stop the worker; tasks will report it
        logger.exception("Could not preload the active model")
    else:
        logger.info("Worker process ready with model %s", model_version)


@worker_ready.connect
def requeue_on_worker_start(sender, **_):
    """A worker restarted after being killed queues again, at once, what it was analysing then."""
    requeue_stalled_photos.delay(worker=sender.hostname)


@shared_task(bind=True)
def analyse_photos_task(self, photo_ids, requested_by_id=None):
    """Analyse a batch of photos of one case. Re-running it skips photos already analysed."""
    try:
        analysis.analyse_photos(photo_ids, requested_by_id=requested_by_id, worker=self.request.hostname)
    except SoftTimeLimitExceeded:
        analysis.mark_failed(photo_ids, PhotoReason.TIMED_OUT)
        raise
    except Exception as exc:
        if self.request.retries < settings.ANALYSIS_MAX_RETRIES:
            countdown = settings.ANALYSIS_RETRY_BACKOFF_SECONDS * 2**self.request.retries
            logger.warning("Analysis of photos %s failed (%r); retry in %s s", photo_ids, exc, countdown)
            raise self.retry(exc=exc, countdown=countdown)
        logger.exception("Analysis of photos %s failed for good", photo_ids)
        analysis.mark_failed(photo_ids, PhotoReason.FAILED, detail=f"{type(exc).__name__}: {exc}")
        raise


@shared_task
def requeue_stalled_photos(worker=None):
    """Queue again the photos whose analysis was lost; `worker`: one just started (see the selector)."""
    photos = selectors.photos_to_requeue(worker=worker)
    change_status(
        Photo.objects.filter(pk__in=[photo.pk for photo in photos]), Photo.Status.RECEIVED, queued_at=timezone.now()
    )
    _send(photos)
    return len(photos)


EMAIL_TASK_OPTIONS = dict(autoretry_for=(OSError,), retry_backoff=30, max_retries=settings.EMAIL_MAX_RETRIES)


@shared_task(**EMAIL_TASK_OPTIONS)
def email_flagged_case_task(case_id):
    return notifications.email_flagged_case(case_id)


@shared_task(**EMAIL_TASK_OPTIONS)
def email_patient_decision_task(decision_id):
    return notifications.email_patient_decision(decision_id)


@shared_task(**EMAIL_TASK_OPTIONS)
def email_site_change_task(case_id, previous_site, decision_id):
    return notifications.email_site_change(case_id, previous_site, decision_id)


@shared_task
def escalate_flagged_cases():
    """Run by beat: flagged cases still undecided shortly before the appointment are escalated."""
    return notifications.escalate_due_cases()


def email_patient_decision_on_commit(decision):
    decision_id = decision.pk
    transaction.on_commit(lambda: _send_task(email_patient_decision_task, decision_id))


def email_site_change_on_commit(*, case_id, previous_site, decision_id):
    transaction.on_commit(lambda: _send_task(email_site_change_task, case_id, previous_site, decision_id))


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

    If the broker is unreachable the photos stay RECEIVED, marked not queued, and the next
    `requeue_stalled_photos` sweep queues them; the patient's upload is never lost.
    """
    photos = list(photos)
    requested_by_id = requested_by.pk if requested_by is not None else None
    Photo.objects.filter(pk__in=[photo.pk for photo in photos]).update(queued_at=timezone.now())
    transaction.on_commit(lambda: _send(photos, requested_by_id))


def _send(photos, requested_by_id=None):
    for case_photos in _by_case(photos):
        photo_ids = [photo.pk for photo in case_photos]
        try:
            analyse_photos_task.delay(photo_ids, requested_by_id)
        except Exception:
            logger.exception("Could not queue analysis of photos %s; the next sweep will", photo_ids)
            try:
                Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.RECEIVED).update(queued_at=None)
            except Exception:  # the database is down too: ANALYSIS_REQUEUE_AFTER_SECONDS bounds the wait
                logger.exception("Could not mark photos %s as not queued", photo_ids)


def _by_case(photos):
    groups = {}
    for photo in photos:
        groups.setdefault(photo.case_id, []).append(photo)
    return list(groups.values())
