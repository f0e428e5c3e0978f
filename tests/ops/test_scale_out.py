"""Scale-out: two inference workers and one light worker against the same Redis and PostgreSQL.

Both inference workers take work, no photo is analysed twice, the light worker never loads
torch, each process loads a model once and reloads only when the active version changes, and
every worker's heartbeat reaches the database.
"""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile

import ml.testing
from core.models import WorkerHeartbeat
from portal.booking.services import book_appointment
from portal.celery import app as celery_app
from registry.versions import activate_model_version, register_checkpoints
from tests.ops.test_worker_e2e import (  # noqa: F401 (fixtures)
    ANALYSIS_TIMEOUT,
    installed_model,
    lesion_photo_jpeg,
    pool_children,
)
from tests.workers import wait_for
from triage.models import Photo
from triage.services import accept_photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

TASK_SUCCEEDED = re.compile(r"analyse_photos_task\[[^\]]+\] succeeded")
MODEL_LOADED = re.compile(r"Loaded model (\S+) in process (\d+)")


def upload_cases(patient, make_slot, count, hours_from_now):
    """`count` appointments with one photo each: one analysis task per case."""
    photos = []
    for offset in range(count):
        appointment = book_appointment(
            patient=patient,
            slot=make_slot(hours_from_now + offset),
            consent_care=True,
            questionnaire={"notes": "A blister."},
        )
        upload = SimpleUploadedFile("lesion.jpg", lesion_photo_jpeg().getvalue(), "image/jpeg")
        photos.append(
            accept_photo(
                case=appointment.case, uploaded_by=patient, uploaded_file=upload, body_site=Photo.BodySite.HANDS
            )
        )
    return photos


def wait_until_analysed(photos, workers):
    ids = [photo.pk for photo in photos]
    wait_for(
        lambda: Photo.objects.filter(pk__in=ids, status=Photo.Status.ANALYSED).count() == len(ids),
        ANALYSIS_TIMEOUT,
        "every photo to be analysed",
        workers[0].log_path,
    )


def log_of(worker):
    return Path(worker.log_path).read_text(errors="replace")


def loads_by_process(worker):
    """{(model version, pid): times loaded} from a worker's log."""
    counts = {}
    for version, pid in MODEL_LOADED.findall(log_of(worker)):
        counts[(version, pid)] = counts.get((version, pid), 0) + 1
    return counts


def test_two_inference_workers_share_the_queue_and_the_light_worker_stays_light(
    patient, make_slot, start_worker, installed_model, tmp_path
):
    celery_app.control.purge()
    broker = settings.CELERY_BROKER_URL
    light = start_worker(broker, "--queues", settings.CELERY_TASK_DEFAULT_QUEUE)
    inference = [start_worker(broker, "--queues", settings.INFERENCE_QUEUE, WORKER_TORCH_THREADS="1") for _ in range(2)]

    photos = upload_cases(patient, make_slot, 6, hours_from_now=24)
    wait_until_analysed(photos, inference)
    # A task commits its photo's status before its worker logs "succeeded": wait for the log lines too.
    wait_for(
        lambda: sum(len(TASK_SUCCEEDED.findall(log_of(worker))) for worker in inference) >= 6,
        ANALYSIS_TIMEOUT,
        "every analysis task to be logged as succeeded",
        inference[0].log_path,
    )

    handled = [len(TASK_SUCCEEDED.findall(log_of(worker))) for worker in inference]
    assert all(count >= 1 for count in handled), f"tasks per inference worker: {handled}"
    assert sum(handled) == 6
    assert not TASK_SUCCEEDED.search(log_of(light))
    for photo in Photo.objects.filter(pk__in=[photo.pk for photo in photos]):
        assert photo.predictions.active().count() == 1 and photo.attempts == 1

    # The light worker ran the housekeeping the inference workers queued at start, without torch.
    assert "requeue_stalled_photos" in log_of(light)
    light_child = pool_children(light.pid)[0]
    assert "libtorch" not in Path(f"/proc/{light_child}/maps").read_text()
    assert "libtorch" in Path(f"/proc/{pool_children(inference[0].pid)[0]}/maps").read_text()

    # One load per pool process so far, whatever the number of tasks it ran.
    for worker in inference:
        assert set(loads_by_process(worker).values()) == {1}

    # Switching the active model: the next tasks use the new version, each process loads it once.
    ml.testing.make_random_checkpoint(
        settings.MODEL_DIR / "second.pt", arch="densenet121", input_size=224, threshold=0.0, version="test-random-2"
    )
    (second,) = register_checkpoints(settings.MODEL_DIR)
    activate_model_version(second)
    photos = upload_cases(patient, make_slot, 4, hours_from_now=48)
    wait_until_analysed(photos, inference)
    for photo in photos:
        assert photo.predictions.active().get().model_version == second
    reloads = {}
    for worker in inference:
        for (version, pid), times in loads_by_process(worker).items():
            assert times == 1, f"{version} loaded {times} times in process {pid}"
            reloads[version] = reloads.get(version, 0) + 1
    assert reloads["test-random-2"] >= 1

    # Every worker's heartbeat is in the database, with the queues it consumes.
    heartbeats = list(WorkerHeartbeat.objects.all())
    assert sorted(heartbeat.queues for heartbeat in heartbeats) == ["default", "inference", "inference"]
    assert all(heartbeat.state == "up" and heartbeat.concurrency == 1 for heartbeat in heartbeats)
