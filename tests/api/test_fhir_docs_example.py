"""docs/fhir.md's curl example, run as written against a live server: metadata, slot, patient, booking,
answers, photo, RiskAssessment, PCR Observation and DiagnosticReport."""

import os
import re
import subprocess

import pytest
from PIL import Image

from portal.celery import app as celery_app
from tests.workers import ROOT
from triage.models import LabResult, Photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def docs_curl_example():
    page = (ROOT / "docs" / "fhir.md").read_text()
    match = re.search(r"<!-- fhir-curl-example -->\n```sh\n(.*?)```", page, re.S)
    assert match, "docs/fhir.md lost its marked curl example"
    return match.group(1)


def test_the_fhir_page_curl_example_runs_as_written(live_server, make_api_key, make_slot, tmp_path, private_storage):
    make_slot(24)
    _, full_key = make_api_key()
    Image.new("RGB", (320, 240), (214, 170, 140)).save(tmp_path / "lesion.jpg", "JPEG")
    try:
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", docs_curl_example()],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "TRIAGE_URL": live_server.url, "TRIAGE_API_KEY": full_key},
        )
    finally:
        celery_app.control.purge()  # the upload queued an analysis nobody runs here
    assert result.returncode == 0, result.stdout + result.stderr
    photo = Photo.objects.get()
    appointment = photo.case.appointment
    assert appointment.external.external_id == "APT-5001" and appointment.questionnaire["fever"] == "yes"
    assert LabResult.objects.get(case=photo.case).result == "positive"
    lines = result.stdout.splitlines()
    assert '"type":"Appointment"' in lines[0]
    assert lines[-1] == (
        f'{{"status":"preliminary","media":["Media/{photo.pk}"],"result":["Observation/{LabResult.objects.get().pk}"]}}'
    )
