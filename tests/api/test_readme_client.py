"""The README's Python client example, run as written against a live server and a real Celery worker:
it registers a patient, books, uploads a photo and polls until the analysis is done."""
import os
import re
import subprocess
import sys

import pytest
from PIL import Image, ImageDraw

import ml.testing
from portal.celery import app as celery_app
from portal.integrations.models import ExternalAppointment
from tests.workers import ROOT
from triage.models import Photo
from registry.versions import register_checkpoints

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def readme_python_example():
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"<!-- python-client-example -->\n```python\n(.*?)```", readme, re.S)
    assert match, "README.md lost its marked Python client example"
    return match.group(1)


@pytest.fixture
def worker(tmp_path, settings, start_worker):
    """A real worker with a tiny model (quick to analyse with), its queue emptied first."""
    settings.MODEL_DIR = tmp_path / "models"
    ml.testing.make_random_checkpoint(settings.MODEL_DIR / "tiny.pt", input_size=64, threshold=0.5, version="tiny-1")
    register_checkpoints()
    celery_app.control.purge()
    return start_worker(settings.CELERY_BROKER_URL)


def test_the_readme_python_client_books_uploads_and_polls(worker, live_server, make_api_key, make_slot, tmp_path):
    make_slot(24)
    _, full_key = make_api_key()
    image = Image.new("RGB", (320, 240), (214, 170, 140))
    ImageDraw.Draw(image).ellipse((100, 70, 200, 170), fill=(140, 60, 60))
    image.save(tmp_path / "lesion.jpg", "JPEG")
    script = tmp_path / "client.py"
    script.write_text(readme_python_example())

    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "lesion.jpg")], cwd=tmp_path, capture_output=True, text=True,
        timeout=180, env={**os.environ, "TRIAGE_URL": live_server.url, "TRIAGE_API_KEY": full_key},
    )

    assert result.returncode == 0, result.stdout + result.stderr + worker.log_path.read_text()[-3000:]
    photo = Photo.objects.get()
    assert photo.status == Photo.Status.ANALYSED
    assert ExternalAppointment.objects.get().appointment.case == photo.case
    assert f"({photo.pk}, 'analysed', '')" in result.stdout
    assert "'outcome': 'pending'" in result.stdout and "probability" not in result.stdout


def test_the_readme_curl_example_books_uploads_and_cancels(live_server, make_api_key, make_slot, tmp_path, private_storage):
    make_slot(24)
    _, full_key = make_api_key()
    Image.new("RGB", (320, 240), (214, 170, 140)).save(tmp_path / "lesion.jpg", "JPEG")
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- curl-client-example -->\n```sh\n(.*?)```", readme, re.S).group(1)
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={**os.environ, "TRIAGE_URL": live_server.url, "TRIAGE_API_KEY": full_key},
        )
    finally:
        celery_app.control.purge()  # the upload queued an analysis nobody runs here
    assert result.returncode == 0, result.stdout + result.stderr
    photo = Photo.objects.get()
    assert photo.case.appointment.external.external_id == "APT-5001"
    assert f'"id": {photo.pk}' in result.stdout and '"status": "received"' in result.stdout
    assert photo.roi_source == "patient_tap"
    assert '"status": "cancelled"' in result.stdout and '"open": false' in result.stdout
    assert photo.case.appointment.status == "cancelled" and not photo.case.is_open
