"""The API page's client examples (docs/api.md), run as written, one after the other, against one live
server: the curl client books, uploads with a tap and cancels; then, with a real Celery worker, the Python
client registers its own patient, books, uploads and polls until the analysis is done. Running both in
sequence proves they are independent (their own ids and Idempotency-Keys): a shared key would replay the
first booking or refuse the second's different body with 422."""

import os
import re
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

import ml.testing
from portal.celery import app as celery_app
from portal.integrations.models import ExternalAppointment
from registry.versions import register_checkpoints
from tests.workers import ROOT
from triage.models import Photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

API_PAGE = ROOT / "docs" / "api.md"


def api_page_example(marker, language):
    """The code block that follows `<!-- marker -->` on the API page, as a reader would copy it."""
    match = re.search(rf"<!-- {marker} -->\n```{language}\n(.*?)```", API_PAGE.read_text(), re.S)
    assert match, f"docs/api.md lost its marked {marker}"
    return match.group(1)


def test_the_curl_then_the_python_client_run_against_one_server(
    live_server, make_api_key, make_slot, start_worker, settings, tmp_path
):
    settings.MODEL_DIR = tmp_path / "models"
    ml.testing.make_random_checkpoint(settings.MODEL_DIR / "tiny.pt", input_size=64, threshold=0.5, version="tiny-1")
    register_checkpoints()
    celery_app.control.purge()
    make_slot(24)
    make_slot(48)
    _, full_key = make_api_key()
    image = Image.new("RGB", (320, 240), (214, 170, 140))
    ImageDraw.Draw(image).ellipse((100, 70, 200, 170), fill=(140, 60, 60))
    image.save(tmp_path / "lesion.jpg", "JPEG")
    client_env = {**os.environ, "TRIAGE_URL": live_server.url, "TRIAGE_API_KEY": full_key}

    curl = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", api_page_example("curl-client-example", "sh")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env=client_env,
    )

    assert curl.returncode == 0, curl.stdout + curl.stderr
    curl_photo = Photo.objects.get(case__appointment__external__external_id="APT-5001")
    assert f'"id": {curl_photo.pk}' in curl.stdout and '"status": "received"' in curl.stdout
    assert curl_photo.roi_source == "patient_tap"
    assert '"status": "cancelled"' in curl.stdout and '"open": false' in curl.stdout
    assert curl_photo.case.appointment.status == "cancelled" and not curl_photo.case.is_open

    worker = start_worker(settings.CELERY_BROKER_URL)  # started now, so the curl client saw its photo "received"
    script = tmp_path / "client.py"
    script.write_text(api_page_example("python-client-example", "python"))
    python = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "lesion.jpg")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
        env=client_env,
    )

    assert python.returncode == 0, python.stdout + python.stderr + worker.log_path.read_text()[-3000:]
    booking = ExternalAppointment.objects.get(external_id="APT-5002")
    assert booking.appointment.status == "booked" and booking.appointment != curl_photo.case.appointment
    photo = Photo.objects.get(case=booking.appointment.case)
    assert photo.status == Photo.Status.ANALYSED
    assert f"({photo.pk}, 'analysed', '')" in python.stdout
    assert "'outcome': 'pending'" in python.stdout and "probability" not in python.stdout
