"""The day-before reminder sent for real: `celery worker --beat` on the configured broker, the
test's database, and Django's file email backend."""

from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from portal.booking.models import Appointment
from portal.booking.services import book_appointment
from portal.celery import app as celery_app
from tests.workers import WORKER_START_TIMEOUT, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_beat_sends_tomorrows_reminder_once(tmp_path, settings, patient, make_slot, start_worker):
    settings.MODEL_DIR = tmp_path / "no-models"
    tomorrow_noon = timezone.make_aware(datetime.combine(timezone.localdate() + timedelta(days=1), time(12, 0)))
    appointment = book_appointment(
        patient=patient, slot=make_slot((tomorrow_noon - timezone.now()).total_seconds() / 3600), consent_care=True
    )
    mail_dir = tmp_path / "mail"
    celery_app.control.purge()
    worker = start_worker(
        settings.CELERY_BROKER_URL,
        "--beat",
        PORTAL_VAR_DIR=str(tmp_path),
        BOOKING_REMINDER_INTERVAL_SECONDS="1",
        EMAIL_URL=f"filemail:///{mail_dir}",  # the URL path keeps the leading slash
    )
    wait_for(
        lambda: Appointment.objects.get(pk=appointment.pk).reminder_sent_at is not None,
        WORKER_START_TIMEOUT,
        "the reminder",
        worker.log_path,
    )
    wait_for(lambda: mail_dir.exists() and any(mail_dir.iterdir()), 30, "the email file", worker.log_path)
    wait_for(
        lambda: worker.log_path.read_text(errors="replace").count("send_reminders_task") >= 6,
        30,
        "more beat runs",
        worker.log_path,
    )  # later runs find nothing more to send

    (message,) = [path.read_text() for path in mail_dir.iterdir()]
    assert f"To: {patient.email}" in message and appointment.reference in message and "tomorrow" in message
