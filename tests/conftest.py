"""Shared fixtures for the portal's tests (unit, end-to-end and browser).

Users: `patient`, `other_patient`, `clinician` ("clinicians" group, member of `clinic`), `admin_user`
(superuser); `make_staff(username, group, clinics=(), on_duty=False)` for other roles and sites.
Every user's password is `PASSWORD`. Booking: `clinic`, `service`, `slot` (tomorrow), `appointment`
(booked by `patient`, with its case and consents). Photos: `private_storage` points default storage at
tmp_path; `make_image_bytes` / `make_upload` build images with Pillow; `enqueued` records
analysis requests instead of sending them to Celery; `photo` is one accepted upload;
`model_version` + `prediction` are what the worker would have recorded (flagged, 0.83).
Users, sites, services, slots and the model version come from the factories the demo shares (demo/factories.py).
Slow tests: `start_worker(broker_url, *celery_args, **env)` runs a real Celery worker (tests/workers.py).
"""

import io
import os
from datetime import timedelta

import numpy as np
import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from demo.factories import ClinicFactory, ModelVersionFactory, ServiceFactory, SlotFactory, UserFactory
from portal.booking.services import book_appointment
from tests.workers import start_worker_process, stop_process_group
from triage.analysis import read_photo, record_prediction
from triage.models import Photo
from triage.permissions import CLINICIANS_GROUP, install_roles
from triage.services import accept_photo, add_site_membership

PASSWORD = "correct-horse-battery-staple"
# A complete questionnaire (keys: portal/booking/questionnaire.py).
QUESTIONNAIRE_ANSWERS = {
    "version": 1,
    "onset_date": "2026-11-20",
    "fever": "yes",
    "swollen_lymph_nodes": "unsure",
    "lesion_sites": ["hands", "genital"],
    "lesion_count": "2_5",
    "pain_itch": "both",
    "close_contact": "yes",
    "travel": "no",
    "travel_where": "",
    "vaccination": "none",
    "notes": "Two blisters on the hand.",
}


def pytest_configure(config):
    """The tests' own var directory (tests/settings.py) exists before SQLite or a broker needs it."""
    from django.conf import settings

    settings.VAR_DIR.mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """The production hasher costs ~0.5 s per user; tests do not need that."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(username, **flags):
    return UserFactory(username=username, password=PASSWORD, **flags)


@pytest.fixture
def patient(db):
    return _user("patient")


@pytest.fixture
def other_patient(db):
    return _user("other-patient")


@pytest.fixture
def make_staff(db):
    """make_staff(username, group, clinics=(), on_duty=False) -> a staff user in that role group,
    member of those clinic sites. The groups come from the roles migration; a transactional test's
    flush removes them, so they are installed again here."""
    install_roles(apps)

    def make(username, group, clinics=(), on_duty=False):
        user = _user(username, is_staff=True)
        user.groups.add(Group.objects.get(name=group))
        for clinic in clinics:
            add_site_membership(user=user, clinic=clinic, on_duty=on_duty)
        return user

    return make


@pytest.fixture
def clinician(make_staff, clinic):
    return make_staff("clinician", CLINICIANS_GROUP, clinics=[clinic], on_duty=True)


@pytest.fixture
def admin_user(db):
    """Superuser (overrides pytest-django's fixture of the same name, same role)."""
    return _user("admin", is_staff=True, is_superuser=True)


@pytest.fixture
def clinic(db):
    return ClinicFactory(name="Test Clinic", address="1 Test Street")


@pytest.fixture(autouse=True)
def fresh_cache():
    """Rate limits (django-ratelimit) count in the cache: each test starts from zero."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def service(db):
    return ServiceFactory(name="Skin lesion review", duration_minutes=20)


@pytest.fixture
def make_slot(clinic, service):
    """make_slot(hours_from_now=24) -> Slot at that clinic for that service (no named clinician)."""

    def make(hours_from_now=24):
        return SlotFactory(
            clinic=clinic,
            service=service,
            starts_at=timezone.now().replace(microsecond=0) + timedelta(hours=hours_from_now),
        )

    return make


@pytest.fixture
def slot(make_slot):
    return make_slot(24)


@pytest.fixture
def appointment(patient, slot):
    """`patient`'s booking of `slot`, made through the booking service (so it has a case)."""
    return book_appointment(patient=patient, slot=slot, consent_care=True, questionnaire=QUESTIONNAIRE_ANSWERS)


@pytest.fixture
def private_storage(settings, tmp_path):
    """Default storage (photos, heatmaps) in a fresh private directory; returns that directory."""
    root = tmp_path / "private-media"
    root.mkdir()
    settings.PRIVATE_MEDIA_ROOT = root
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": root, "base_url": None},
        },
    }
    return root


@pytest.fixture
def stored_files(private_storage):
    """stored_files() -> every file currently in private storage."""
    return lambda: [path for path in private_storage.rglob("*") if path.is_file()]


@pytest.fixture
def make_image_bytes():
    """make_image_bytes(size=(200, 120), fmt="JPEG", color=..., **save_options) -> bytes."""

    def make(size=(200, 120), fmt="JPEG", color=(200, 120, 90), **save_options):
        buffer = io.BytesIO()
        Image.new("RGB", size, color).save(buffer, format=fmt, **save_options)
        return buffer.getvalue()

    return make


@pytest.fixture
def make_upload(make_image_bytes):
    """make_upload(name="photo.jpg", content=None, **image_options) -> an uploaded file."""

    def make(name="photo.jpg", content=None, content_type="image/jpeg", **image_options):
        if content is None:
            content = make_image_bytes(**image_options)
        return SimpleUploadedFile(name, content, content_type=content_type)

    return make


@pytest.fixture
def enqueued(monkeypatch):
    """Analysis requests as a list of (photo_id, requested_by_id), recorded where the real
    `enqueue_analysis` would send them to Celery (after commit); nothing reaches a broker."""
    calls = []

    def record(photo_ids, requested_by_id=None):
        calls.extend((photo_id, requested_by_id) for photo_id in photo_ids)

    monkeypatch.setattr("triage.tasks.analyse_photos_task.delay", record)
    return calls


@pytest.fixture
def celery_eager():
    """Tasks sent with .delay() run at once in this process: the real task code, without a broker
    (tests/ops/test_worker_e2e.py covers the same tasks through a real worker)."""
    from portal.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    # The app reads Django settings with the CELERY_ namespace, so its keys carry the prefix.
    app.conf.CELERY_TASK_ALWAYS_EAGER = app.conf.CELERY_TASK_EAGER_PROPAGATES = True
    yield
    app.conf.CELERY_TASK_ALWAYS_EAGER, app.conf.CELERY_TASK_EAGER_PROPAGATES = previous


@pytest.fixture
def photo(appointment, patient, private_storage, make_upload, enqueued):
    """One 200×120 photo uploaded by `patient` for `appointment`, without a box, and normalised as
    the worker's first step does (`read_photo`: the stored JPEG made, the original deleted)."""
    photo = accept_photo(
        case=appointment.case, uploaded_by=patient, uploaded_file=make_upload(), body_site=Photo.BodySite.HANDS
    )
    read_photo(photo)
    return photo


@pytest.fixture
def model_version(db):
    return ModelVersionFactory(version="test-model-1", is_active=True)


@pytest.fixture
def record_result(model_version, make_image_bytes):
    """record_result(photo, probability, reason="") -> Prediction by `model_version` (threshold 0.5)
    with an automatic box, recorded after the worker's `read_photo` by its own `record_prediction` (which flags the case);
    a `reason` makes the photo not assessable."""
    from ml import Analysis

    def record(photo, probability, reason=""):
        read_photo(photo)  # the worker's first step: a photo is normalised before it is scored
        result = Analysis(
            probability=probability,
            heatmap=np.zeros((8, 8), np.float32),
            roi=(20, 10, 120, 90),
            roi_source="auto",
            assessable=not reason,
            reason=reason,
        )
        return record_prediction(
            photo=photo,
            model_version=model_version,
            analysis=result,
            heatmap_jpeg=make_image_bytes(size=(64, 64)),
            timings_ms={},
        )

    return record


@pytest.fixture
def prediction(photo, record_result):
    """A flagged analysis of `photo` (0.83 against threshold 0.5)."""
    return record_result(photo, 0.83)


@pytest.fixture
def start_worker(tmp_path, private_storage):
    """start_worker(broker_url, *celery_args, **env) -> a real `celery worker` process (prefork, one child)
    sharing this test's database, storage and `settings.MODEL_DIR`, on every queue unless `--queues` is
    among the arguments; its log is `process.log_path`. Every worker started is stopped after the test."""
    processes = []

    def start(broker_url, *celery_args, **env):
        log_path = tmp_path / f"worker-{len(processes)}.log"
        hostname = f"test-{os.getpid()}-{len(processes)}@%h"
        processes.append(start_worker_process(log_path, hostname, broker_url, *celery_args, **env))
        return processes[-1]

    yield start
    for process in processes:
        stop_process_group(process)
