"""Issue #11 without servers of the tests' own: production settings, the database-outage page, upload
limits and refusals, the per-address sign-in limit, audited reads and denials, the append-only audit
log, and the recovery rules (which photos are queued again; a superseded run records nothing)."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone, translation

from core.models import AuditEvent
from portal.booking.templatetags.durations import duration_in_words
from tests.conftest import PASSWORD
from tests.triage.test_analysis import lesion_upload, tiny_model  # noqa: F401 (fixture)
from triage import analysis, selectors, tasks
from triage.models import Case, Outcome, Photo, Prediction
from triage.services import accept_photos, record_decision

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db

PRODUCTION_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "a-real-looking-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "portal.example.org",
    "EMAIL_URL": "smtp+tls://mailer:secret@mail.example.org:587",
}


def run_manage(*args, **env):
    """manage.py with the production settings module and exactly these variables (plus PATH)."""
    environment = {
        "PATH": os.environ["PATH"],
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_VAR_DIR": os.environ["PORTAL_VAR_DIR"],
        **env,
    }
    if args[0] == "shell":
        args = ("shell", "--verbosity", "0", *args[1:])  # without the list of automatic imports
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


# --- Production settings ---------------------------------------------------------------------------


def test_check_deploy_is_clean_with_debug_off():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_email_and_console_mail_needs_debug_or_asking():
    without_email = {key: value for key, value in PRODUCTION_ENV.items() if key != "EMAIL_URL"}
    refused = run_manage("check", **without_email)
    assert refused.returncode != 0 and "Set EMAIL_URL" in refused.stderr

    show = (
        "from django.conf import settings; print(settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_USE_TLS)"
    )
    smtp = run_manage("shell", "-c", show, **PRODUCTION_ENV)
    assert smtp.stdout.split() == ["django.core.mail.backends.smtp.EmailBackend", "mail.example.org", "True"]
    debug = run_manage("shell", "-c", show, **{**without_email, "DEBUG": "1"})
    assert debug.stdout.startswith("django.core.mail.backends.console.EmailBackend")
    asked = run_manage("shell", "-c", show, **{**PRODUCTION_ENV, "EMAIL_URL": "consolemail://"})
    assert asked.stdout.startswith("django.core.mail.backends.console.EmailBackend")


def test_https_switches_are_on_by_default_and_each_can_be_turned_off():
    show = (
        "from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
        "s.SECURE_HSTS_INCLUDE_SUBDOMAINS, s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER is not None, "
        "s.SESSION_COOKIE_SECURE)"
    )
    on = run_manage("shell", "-c", show, **PRODUCTION_ENV)
    assert on.stdout.split() == ["True", "31536000", "True", "True", "True", "True"], on.stderr
    off = run_manage(
        "shell",
        "-c",
        show,
        **PRODUCTION_ENV,
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="0",
        SECURE_HSTS_INCLUDE_SUBDOMAINS="0",
        SECURE_HSTS_PRELOAD="0",
        SECURE_PROXY_SSL="0",
        SECURE_COOKIES="0",
    )
    assert off.stdout.split() == ["False", "0", "False", "False", "False", "False"], off.stderr


# --- A database outage ----------------------------------------------------------------------------


def test_a_database_outage_gives_a_friendly_503_not_a_traceback():
    """A real outage: nothing listens where DATABASE_URL points. The page renders without the database."""
    request = (
        "from django.test import Client; r = Client(raise_request_exception=False)"
        ".post('/accounts/login/', {'username': 'patient', 'password': 'secret'});"
        "print(r.status_code, r['Retry-After']); print(r.content.decode())"
    )
    result = run_manage(
        "shell",
        "-c",
        request,
        **{**PRODUCTION_ENV, "ALLOWED_HOSTS": "testserver"},
        SECURE_SSL_REDIRECT="0",
        DATABASE_URL="postgres://postgres@127.0.0.1:9/portal",
        DJANGO_SETTINGS_MODULE="tests.settings",
    )  # static files without collectstatic
    status, page = result.stdout.split("\n", 1)
    assert status == "503 60", result.stderr[-2000:]
    assert "Please try again in a minute" in page
    assert "Traceback" not in page and "OperationalError" not in page


# --- Uploads: refusals answer 400 and name their reason; caps --------------------------------------


@pytest.fixture
def upload_page(client, patient, appointment, private_storage, enqueued):
    client.force_login(patient)
    url = reverse("appointment", args=[appointment.reference])
    return lambda files: client.post(url, {"photos": files, "body_site": "hands", "consent_confirm": "on"})


def test_too_many_files_in_one_upload_are_refused_with_a_message(upload_page, make_upload, settings, stored_files):
    settings.PHOTO_MAX_FILES_PER_UPLOAD = 3
    response = upload_page([make_upload(name=f"{n}.jpg") for n in range(4)])
    assert response.status_code == 400
    assert "Please send at most 3 photos at a time (you chose 4)." in response.content.decode()
    assert not Photo.objects.exists() and stored_files() == []


def test_an_appointment_takes_a_limited_number_of_photos(upload_page, make_upload, settings, stored_files):
    settings.PHOTO_MAX_PER_APPOINTMENT = 3
    assert upload_page([make_upload(), make_upload()]).status_code == 302
    refused = upload_page([make_upload(), make_upload()])
    assert refused.status_code == 400
    assert "up to 3 photos and this one has 2. Please send at most 1 more." in refused.content.decode()
    assert upload_page([make_upload()]).status_code == 302
    full = upload_page([make_upload()])
    assert full.status_code == 400 and "Please call the clinic" in full.content.decode()
    assert Photo.objects.count() == 3 and len(stored_files()) == 3


def test_every_refused_upload_answers_400_with_its_reason(upload_page, make_upload, client, appointment):
    not_a_photo = upload_page([make_upload(name="notes.txt", content=b"hello")])
    assert not_a_photo.status_code == 400 and "notes.txt: This file is not a photo" in not_a_photo.content.decode()
    no_consent = client.post(
        reverse("appointment", args=[appointment.reference]), {"photos": [make_upload()], "body_site": "hands"}
    )
    assert no_consent.status_code == 400 and "Please confirm your consent" in no_consent.content.decode()
    assert client.get(reverse("appointment", args=[appointment.reference])).status_code == 200


# --- Sign-in limits --------------------------------------------------------------------------------


def test_one_address_trying_many_user_names_is_locked_out(client, patient, settings):
    settings.AXES_ADDRESS_FAILURE_LIMIT = 8
    for number in range(settings.AXES_ADDRESS_FAILURE_LIMIT):  # never more than one try per name
        client.post(reverse("login"), {"username": f"someone-{number}", "password": "guess"})
    response = client.post(reverse("login"), {"username": "patient", "password": PASSWORD})
    assert response.status_code == 429 and "_auth_user_id" not in client.session
    assert "try again in 30 minutes" in response.content.decode()  # the cool-off in words, not 0:30:00


def test_waiting_times_are_put_in_words():
    assert [duration_in_words(timedelta(seconds=s)) for s in (1, 60, 90, 1800, 3600, 7200, 5400)] == [
        "1 minute",
        "1 minute",
        "2 minutes",
        "30 minutes",
        "1 hour",
        "2 hours",
        "90 minutes",
    ]
    with translation.override("es"):
        assert duration_in_words(timedelta(hours=2)) == "2 horas"


def test_the_per_account_limit_stays_and_a_sign_in_clears_only_that_account(client, patient, other_patient, settings):
    settings.AXES_ADDRESS_FAILURE_LIMIT = 8
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post(reverse("login"), {"username": "other-patient", "password": "guess"})
    client.post(reverse("login"), {"username": "patient", "password": "guess"})
    client.post(reverse("login"), {"username": "patient", "password": PASSWORD})  # 5 failures from here: under 8
    assert "_auth_user_id" in client.session
    client.logout()
    for _ in range(settings.AXES_ADDRESS_FAILURE_LIMIT - (settings.AXES_FAILURE_LIMIT - 1)):
        client.post(reverse("login"), {"username": "nobody", "password": "guess"})
    # The success cleared patient's one failure but not the others: the address is now at its limit.
    assert client.post(reverse("login"), {"username": "patient", "password": PASSWORD}).status_code == 429


# --- Audit: reads and denials, the log itself ------------------------------------------------------


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_admin_reads_of_patient_data_are_audited_with_the_booking_reference(admin_client, admin_user, prediction):
    photo = prediction.photo
    reference = photo.case.appointment.reference
    admin_client.get(reverse("admin:triage_case_changelist"))
    admin_client.get(reverse("admin:triage_case_change", args=[photo.case_id]))
    admin_client.get(reverse("admin:triage_photo_change", args=[photo.pk]))
    admin_client.get(reverse("admin:triage_prediction_change", args=[prediction.pk]))
    admin_client.get(reverse("admin:booking_appointment_change", args=[photo.case.appointment_id]))

    events = {event.action: event for event in AuditEvent.objects.filter(actor=admin_user)}
    assert events["admin_list_case"].detail["shown"] == [photo.case_id]
    for action in ["admin_view_case", "admin_view_photo", "admin_view_prediction", "admin_view_appointment"]:
        assert events[action].case_reference == reference and events[action].allowed, action


def test_admin_cannot_change_an_outcome_or_delete_clinical_records(admin_client, clinician, prediction):
    case = prediction.photo.case
    record_decision(case=case, clinician=clinician, outcome=Outcome.SUSPECTED, action="isolation_room")
    change = reverse("admin:triage_case_change", args=[case.pk])
    assert 'name="outcome"' not in admin_client.get(change).content.decode()
    assert admin_client.post(change, {"outcome": Outcome.NOT_SUSPECTED, "is_open": "on"}).status_code == 403
    for model, pk in [("case", case.pk), ("photo", prediction.photo_id), ("decision", case.decisions.get().pk)]:
        assert admin_client.post(reverse(f"admin:triage_{model}_delete", args=[pk]), {"post": "yes"}).status_code == 403
    assert Case.objects.get().outcome == Outcome.SUSPECTED and Photo.objects.count() == 1


def test_audit_events_can_be_neither_edited_nor_deleted_and_are_searchable(admin_client, prediction):
    event = AuditEvent.objects.filter(case_reference=prediction.photo.case.appointment.reference).first()
    if event is None:
        admin_client.get(reverse("admin:triage_photo_change", args=[prediction.photo_id]))
        event = AuditEvent.objects.get(action="admin_view_photo")
    change = reverse("admin:core_auditevent_change", args=[event.pk])
    assert admin_client.post(change, {"action": "nothing"}).status_code == 403
    assert (
        admin_client.post(reverse("admin:core_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    )
    changelist = reverse("admin:core_auditevent_changelist")
    bulk_delete = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [event.pk], "post": "yes"}
    )
    assert AuditEvent.objects.filter(pk=event.pk).exists(), bulk_delete.status_code
    found = admin_client.get(changelist, {"q": event.case_reference}).content.decode()
    assert event.case_reference in found
    assert admin_client.get(changelist, {"action__exact": event.action}).status_code == 200


def test_staff_queue_list_is_audited(client, clinician, prediction):
    client.force_login(clinician)
    client.get(reverse("staff-queue"))
    event = AuditEvent.objects.get(action="view_queue")
    assert event.actor == clinician and event.detail["shown"] == [prediction.photo.case_id]


def test_a_patient_on_a_staff_page_is_an_audited_denial(client, patient):
    client.force_login(patient)
    assert client.get(reverse("staff-queue")).status_code == 403
    event = AuditEvent.objects.get(action="denied_page")
    assert (
        event.actor == patient
        and not event.allowed
        and event.detail == {"asked_for": reverse("staff-queue"), "rule": "role"}
    )


def test_denied_attempts_on_another_patients_appointment_are_audited(client, other_patient, appointment):
    client.force_login(other_patient)
    client.get(reverse("appointment", args=[appointment.reference]))
    client.post(reverse("appointment-cancel", args=[appointment.reference]))
    client.get(reverse("appointment-photo-status", args=[appointment.reference]))
    denied = AuditEvent.objects.filter(actor=other_patient, allowed=False)
    assert sorted(denied.values_list("action", flat=True)) == [
        "view_appointment",
        "view_appointment",
        "view_photo_status",
    ]
    assert set(denied.values_list("case_reference", flat=True)) == {appointment.reference}


# --- Recovery rules ---------------------------------------------------------------------------------


def test_which_photos_are_queued_again(
    appointment, patient, private_storage, enqueued, make_upload, settings, model_version
):
    photos = accept_photos(
        case=appointment.case, uploaded_by=patient, body_site="hands", uploaded_files=[make_upload() for _ in range(6)]
    )
    fresh, not_queued, queued_long_ago, live, lease_over, owned = photos
    now = timezone.now()
    Photo.objects.filter(pk=not_queued.pk).update(queued_at=None)
    Photo.objects.filter(pk=queued_long_ago.pk).update(
        queued_at=now - timedelta(seconds=settings.ANALYSIS_REQUEUE_AFTER_SECONDS + 1)
    )
    Photo.objects.filter(pk=live.pk).update(
        status=Photo.Status.ANALYSING, analysis_started_at=now, analysis_worker="a@h"
    )
    Photo.objects.filter(pk=lease_over.pk).update(
        status=Photo.Status.ANALYSING,
        analysis_worker="a@h",
        analysis_started_at=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT + 1),
    )
    Photo.objects.filter(pk=owned.pk).update(
        status=Photo.Status.ANALYSING, analysis_started_at=now, analysis_worker="b@h"
    )

    assert [p.pk for p in selectors.photos_to_requeue()] == [not_queued.pk, queued_long_ago.pk, lease_over.pk]
    assert owned.pk in [p.pk for p in selectors.photos_to_requeue(worker="b@h")]

    enqueued.clear()
    assert tasks.requeue_stalled_photos(worker="b@h") == 4
    assert sorted(photo_id for photo_id, _ in enqueued) == sorted(
        [not_queued.pk, queued_long_ago.pk, lease_over.pk, owned.pk]
    )
    assert Photo.objects.get(pk=lease_over.pk).status == Photo.Status.RECEIVED
    assert selectors.photos_to_requeue(worker="b@h") == []  # queued again now: not picked twice


def switch_broker(app, url):
    """Point the Celery app back at a broker after a test closed its pool: kombu's shared pools are
    emptied (a closed pool left in them would refuse every later test's use) and made anew."""
    from kombu import pools

    app.conf.broker_url = url
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def test_an_upload_while_the_broker_is_down_is_stored_and_marked_not_queued(
    appointment, patient, private_storage, make_upload, settings, django_capture_on_commit_callbacks
):
    """A real broker outage: nothing listens on the broker's port."""
    from portal.celery import app

    app.conf.broker_url = "redis://127.0.0.1:9/0"
    app.pool.force_close_all()
    try:
        with django_capture_on_commit_callbacks(execute=True):
            (photo,) = accept_photos(
                case=appointment.case, uploaded_by=patient, body_site="hands", uploaded_files=[make_upload()]
            )
    finally:
        switch_broker(app, settings.CELERY_BROKER_URL)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.RECEIVED and photo.queued_at is None
    assert photo.original.name and default_storage.exists(photo.original.name)  # stored as sent
    assert [p.pk for p in selectors.photos_to_requeue()] == [photo.pk]


def test_a_run_overtaken_by_a_later_one_records_nothing(tiny_model, appointment, patient, private_storage, enqueued):  # noqa: F811
    (photo,) = accept_photos(
        case=appointment.case, uploaded_by=patient, body_site="trunk", uploaded_files=[lesion_upload()]
    )
    (first_run,) = analysis._claim_photos([photo.pk], "w1@h")
    (prediction,) = analysis.analyse_photos([photo.pk], worker="w2@h")  # redelivered while the first still ran
    model = analysis.versions.loaded_model(tiny_model)
    (late,) = model.analyse_batch([analysis.read_photo(first_run)], [None])
    assert (
        analysis.record_prediction(
            photo=first_run, model_version=tiny_model, analysis=late, heatmap_jpeg=b"jpeg", timings_ms={}
        )
        is None
    )
    assert list(Prediction.objects.active().all()) == [prediction]
    photo.refresh_from_db()
    assert photo.status == Photo.Status.ANALYSED and photo.attempts == 2 and photo.analysis_worker == "w2@h"


def test_refusals_raise_before_anything_is_stored(
    appointment, patient, private_storage, make_upload, settings, stored_files, enqueued
):
    settings.PHOTO_MAX_FILES_PER_UPLOAD = 1
    with pytest.raises(ValidationError):
        accept_photos(
            case=appointment.case, uploaded_by=patient, body_site="hands", uploaded_files=[make_upload(), make_upload()]
        )
    assert stored_files() == [] and enqueued == []
