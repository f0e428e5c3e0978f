"""The OpenAPI schema: the committed file matches the code, the docs pages work offline, and a
schemathesis run against a live server finds no 500 and no response that breaks the schema."""

import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from portal.celery import app as celery_app
from portal.integrations.services import book_external_appointment, register_patient
from triage.services import accept_photo

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_SCHEMA = ROOT / "docs" / "openapi.yaml"


def test_committed_schema_matches_the_code(tmp_path):
    generated = tmp_path / "openapi.yaml"
    call_command("spectacular", "--file", str(generated), "--validate", "--fail-on-warn")
    assert generated.read_text() == COMMITTED_SCHEMA.read_text(), (
        "docs/openapi.yaml is out of date: run `python manage.py spectacular --file docs/openapi.yaml --validate`"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["api-docs", "api-redoc"])
def test_docs_pages_use_only_local_files(client, page):
    html = client.get(reverse(page)).content.decode()
    assert "/static/drf_spectacular_sidecar/" in html
    assert "cdn" not in html.lower() and "https://" not in html
    for asset in [
        "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js",
        "drf_spectacular_sidecar/redoc/bundles/redoc.standalone.js",
    ]:
        assert finders.find(asset), asset


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_schemathesis_finds_no_server_error_or_schema_violation(
    live_server, settings, tmp_path, make_api_key, make_slot, admin_user, make_upload, private_storage
):
    """Every operation, with an API key of the clinic and an admin's browser session (so integration,
    staff and admin endpoints all answer), a bounded number of generated requests each."""
    settings.API_KEY_FAILURE_LIMIT = 10_000  # generated requests without a valid key must not lock the key out
    api_key, full_key = make_api_key()
    patient, _ = register_patient(api_key=api_key, external_id="P-1")
    external = book_external_appointment(
        api_key=api_key, external_id="A-1", patient=patient, slot=make_slot(24), consent_care=True
    )
    accept_photo(
        case=external.appointment.case, uploaded_by=api_key.user, uploaded_file=make_upload(), body_site="hands"
    )
    browser = Client()
    browser.force_login(admin_user)
    csrf = "a" * 32
    headers = {
        "Authorization": f"Api-Key {full_key}",
        "Cookie": f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
    }
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        f"{live_server.url}/api/v1/schema/",
        "--url",
        live_server.url,
        "--checks",
        "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
        "--max-examples",
        "8",
        "--seed",
        "1",
        "--workers",
        "1",
        "--generation-database",
        "none",
        "--no-color",
        "--request-timeout",
        "30",
        "--phases",
        "examples,coverage,fuzzing",
    ]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    try:
        result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    finally:
        celery_app.control.purge()  # uploads queued analyses nobody runs here
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-3000:]
