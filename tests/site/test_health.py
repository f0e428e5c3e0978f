"""/healthz and /readyz against the real database, Redis and storage, and request ids."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from portal.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]


def test_healthz_answers_even_for_a_host_the_site_does_not_serve(client):
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_is_ready_when_database_broker_storage_and_model_answer(client, private_storage, model_version):
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok", "model": "ok"},
    }
    assert response["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_readyz_names_each_failed_check(client, settings, tmp_path, private_storage, monkeypatch):
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "never-created"},
        },
    }
    monkeypatch.setattr(celery_app.conf, "broker_write_url", "redis://127.0.0.1:1/0")  # nothing listens there
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "checks": {"database": "ok", "broker": "failed", "storage": "failed", "model": "failed"},
    }


def test_readyz_reports_an_unreachable_database():
    """In a process of its own, so the test database connection is not disturbed."""
    script = (
        "import json; from django.test import Client;"
        "response = Client().get('/readyz'); print(response.status_code, json.dumps(response.json()['checks']))"
    )
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing", "PORTAL_ALLOW_INSECURE_KEY": "1"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1].startswith('503 {"database": "failed"')
    assert "Readiness check 'database' failed" in result.stderr


def test_every_response_carries_a_request_id_and_a_wellformed_incoming_one_is_kept(client):
    given = client.get("/healthz", HTTP_X_REQUEST_ID="lb-0123456789abcdef")
    assert given["X-Request-ID"] == "lb-0123456789abcdef"
    made = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\nwith a forged log line")
    assert len(made["X-Request-ID"]) == 32 and made["X-Request-ID"] != given["X-Request-ID"]
