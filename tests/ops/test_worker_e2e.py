"""End to end with a real Celery worker process on the configured broker (Redis in CI):
upload through the web view → task → prediction and heatmap → clinician queue.
"""

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import redis
from django.conf import settings
from django.core.files.storage import default_storage
from django.urls import reverse
from PIL import Image, ImageDraw

import ml.testing
from portal.celery import app as celery_app
from registry.versions import register_checkpoints
from tests.workers import ROOT, stack_env, stop_process_group, wait_for
from triage.models import Case, Photo

ANALYSIS_TIMEOUT = 180

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def installed_model(tmp_path, settings):
    model_dir = tmp_path / "models"
    # Full input size so a batch takes long enough for the kill test to land mid-task.
    ml.testing.make_random_checkpoint(model_dir / "random.pt", arch="densenet121", input_size=224, threshold=0.0)
    settings.MODEL_DIR = model_dir
    (model_version,) = register_checkpoints(model_dir)
    return model_version


@pytest.fixture
def celery_worker_process(installed_model, start_worker):
    """A worker with `installed_model` on the configured broker (Redis in CI), its queue emptied first."""
    celery_app.control.purge()
    return start_worker(settings.CELERY_BROKER_URL)


def lesion_photo_jpeg():
    image = Image.new("RGB", (320, 240), (214, 170, 140))
    ImageDraw.Draw(image).ellipse((120, 80, 200, 160), fill=(150, 60, 60), outline=(90, 30, 30), width=6)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    buffer.seek(0)
    buffer.name = "lesion.jpg"
    return buffer


def test_upload_is_analysed_by_a_real_worker_and_reaches_the_clinician_queue(
    client, patient, clinician, appointment, celery_worker_process
):
    case = appointment.case
    client.force_login(patient)
    response = client.post(
        reverse("appointment", kwargs={"reference": appointment.reference}),
        {"photos": [lesion_photo_jpeg()], "body_site": "genital", "consent_confirm": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    photo = Photo.objects.get(case=case)

    wait_for(
        lambda: Photo.objects.get(pk=photo.pk).status in {Photo.Status.ANALYSED, Photo.Status.FAILED},
        ANALYSIS_TIMEOUT,
        "the worker to analyse the photo",
        celery_worker_process.log_path,
    )
    photo.refresh_from_db()
    assert photo.status == Photo.Status.ANALYSED, photo.staff_message
    prediction = photo.predictions.active().get()
    assert 0.0 <= prediction.probability <= 1.0
    assert prediction.model_version.version == "test-random"
    assert prediction.roi_source == "auto" or prediction.roi_source == "none"
    with default_storage.open(prediction.heatmap.name, "rb") as heatmap:
        assert Image.open(heatmap).size == (320, 240)
    assert prediction.timings_ms["model"] > 0

    # Threshold 0 → every prediction flags the case; it is first in the clinician's queue.
    assert Case.objects.get(pk=case.pk).flagged
    client.force_login(clinician)
    queue = client.get(reverse("staff-queue"))
    assert queue.status_code == 200
    assert appointment.reference in queue.content.decode()
    case_page = client.get(reverse("staff-case", kwargs={"case_id": case.pk}))
    assert case_page.status_code == 200
    assert f"{prediction.probability * 100:.0f}%" in case_page.content.decode()

    # The patient's status endpoint says analysed, and never shows the score.
    client.force_login(patient)
    status = client.get(reverse("appointment-photo-status", kwargs={"reference": appointment.reference})).json()
    assert status["photos"][0]["status"] == "analysed"
    assert "probability" not in str(status)


def pool_children(pid):
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children]


def test_an_onnx_runtime_worker_analyses_an_upload_without_mapping_torch(
    client, patient, appointment, tmp_path, settings, start_worker
):
    """ML_RUNTIME=onnx, as deployed: registration exports the checkpoint, the real worker's pool
    process analyses from the export and never maps torch's libraries."""
    model_dir = tmp_path / "models"
    ml.testing.make_random_checkpoint(model_dir / "lite.pt", arch="efficientnet_lite0", threshold=0.0)
    settings.MODEL_DIR, settings.ML_RUNTIME = model_dir, "onnx"
    register_checkpoints(model_dir)
    celery_app.control.purge()
    worker = start_worker(settings.CELERY_BROKER_URL, ML_RUNTIME="onnx")
    client.force_login(patient)
    client.post(
        reverse("appointment", kwargs={"reference": appointment.reference}),
        {"photos": [lesion_photo_jpeg()], "body_site": "genital", "consent_confirm": "on"},
    )
    photo = Photo.objects.get(case=appointment.case)
    wait_for(
        lambda: Photo.objects.get(pk=photo.pk).status in {Photo.Status.ANALYSED, Photo.Status.FAILED},
        ANALYSIS_TIMEOUT,
        "the ONNX Runtime worker to analyse the photo",
        worker.log_path,
    )
    photo.refresh_from_db()
    assert photo.status == Photo.Status.ANALYSED, photo.staff_message
    maps = Path(f"/proc/{pool_children(worker.pid)[0]}/maps").read_text()
    assert "onnxruntime" in maps and "libtorch" not in maps


def test_a_worker_killed_mid_task_loses_nothing(client, patient, appointment, celery_worker_process):
    """SIGKILL the pool process while it analyses: the task is redelivered and every photo ends analysed once."""
    case = appointment.case
    client.force_login(patient)
    photos = [lesion_photo_jpeg() for _ in range(6)]
    response = client.post(
        reverse("appointment", kwargs={"reference": appointment.reference}),
        {"photos": photos, "body_site": "trunk", "consent_confirm": "on"},
    )
    assert response.status_code == 302

    wait_for(
        lambda: Photo.objects.filter(case=case, status=Photo.Status.ANALYSING).exists(),
        ANALYSIS_TIMEOUT,
        "analysis to start",
        celery_worker_process.log_path,
        interval=0.01,
    )
    killed = pool_children(celery_worker_process.pid)
    assert killed, "the prefork pool has no child process"
    for child in killed:
        os.kill(child, signal.SIGKILL)

    wait_for(
        lambda: not Photo.objects.filter(case=case).exclude(status=Photo.Status.ANALYSED).exists(),
        ANALYSIS_TIMEOUT,
        "the redelivered task to finish",
        celery_worker_process.log_path,
    )
    assert set(pool_children(celery_worker_process.pid)).isdisjoint(killed)
    for photo in Photo.objects.filter(case=case):
        assert photo.predictions.active().count() == 1
    assert max(Photo.objects.filter(case=case).values_list("attempts", flat=True)) >= 2


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def answers_ping(port):
    try:
        return redis.Redis(host="127.0.0.1", port=port).ping()
    except redis.ConnectionError:
        return False


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own (free port, nothing on disk), so it can be stopped and started."""
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    port = free_port()
    command = [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(tmp_path),
    ]
    server = {}

    def start():
        server["process"] = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: answers_ping(port), 20, "redis-server to start")

    def stop():
        stop_process_group(server["process"])

    start()
    yield SimpleNamespace(url=f"redis://127.0.0.1:{port}/0", start=start, stop=stop)
    stop()


def test_upload_while_redis_is_down_is_analysed_after_it_restarts(
    appointment, patient, installed_model, start_worker, own_redis, tmp_path
):
    """The broker is down when the photo arrives: the upload still succeeds, the photo waits as
    'received', and the worker's periodic re-queue analyses it once Redis is back."""
    worker = start_worker(
        own_redis.url,
        "--beat",
        "--schedule",
        str(tmp_path / "beat-schedule"),
        ANALYSIS_REQUEUE_INTERVAL_SECONDS="2",
        ANALYSIS_REQUEUE_AFTER_SECONDS="1",
    )
    own_redis.stop()

    upload = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "import io; from django.core.files.uploadedfile import SimpleUploadedFile; from tests.ops.test_worker_e2e import lesion_photo_jpeg;"
            "from django.contrib.auth.models import User; from triage.models import Case; from triage.services import accept_photo;"
            "buffer = lesion_photo_jpeg();"
            f"photo = accept_photo(case=Case.objects.get(pk={appointment.case.pk}), uploaded_by=User.objects.get(pk={patient.pk}),"
            "uploaded_file=SimpleUploadedFile('lesion.jpg', buffer.getvalue(), 'image/jpeg'), body_site='trunk');"
            "print('stored', photo.pk)",
        ],
        cwd=ROOT,
        env=stack_env(own_redis.url),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert upload.returncode == 0, upload.stderr[-3000:]
    assert "Could not queue analysis" in upload.stderr
    photo = Photo.objects.get(case=appointment.case)
    assert photo.status == Photo.Status.RECEIVED

    own_redis.start()
    wait_for(
        lambda: Photo.objects.get(pk=photo.pk).status == Photo.Status.ANALYSED,
        ANALYSIS_TIMEOUT,
        "the photo to be re-queued and analysed",
        worker.log_path,
    )
    assert Photo.objects.get(pk=photo.pk).predictions.active().count() == 1


def test_a_real_worker_emails_on_duty_staff_about_a_flagged_case_and_the_patient_about_the_decision(
    client, patient, clinician, appointment, installed_model, start_worker, tmp_path
):
    """Flag → `case_flagged` → email task, all inside the worker; the decision's email task is sent
    by the web side after commit and run by the worker. Emails land in files (filebased backend)."""
    mail_dir = tmp_path / "mail"
    celery_app.control.purge()
    worker = start_worker(
        settings.CELERY_BROKER_URL,
        EMAIL_URL=f"filemail:///{mail_dir}",  # the URL path keeps the leading slash
    )

    def mail_to(address):
        files = sorted(mail_dir.glob("*.log")) if mail_dir.exists() else []
        return [text for text in (path.read_text() for path in files) if f"To: {address}" in text]

    client.force_login(patient)
    client.post(
        reverse("appointment", kwargs={"reference": appointment.reference}),
        {"photos": [lesion_photo_jpeg()], "body_site": "genital", "consent_confirm": "on"},
    )
    wait_for(lambda: mail_to(clinician.email), ANALYSIS_TIMEOUT, "the flagged-case email", worker.log_path)
    (staff_mail,) = mail_to(clinician.email)
    assert appointment.reference in staff_mail and reverse("staff-case", args=[appointment.case.pk]) in staff_mail

    client.force_login(clinician)
    response = client.post(
        reverse("staff-decide", args=[appointment.case.pk]),
        {
            "outcome": "suspected",
            "action": "telehealth",
            "patient_instructions": "We will call you at 17:50.",
        },
    )
    assert response.status_code == 302
    wait_for(lambda: mail_to(patient.email), 60, "the patient's decision email", worker.log_path)
    (patient_mail,) = mail_to(patient.email)
    assert "We will call you at 17:50." in patient_mail and "%" not in patient_mail.split("\n\n", 1)[1]
