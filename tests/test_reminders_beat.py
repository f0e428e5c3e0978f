"""The day-before reminder sent for real: `celery worker --beat` on the configured broker, the
test's database, and Django's file email backend."""
import subprocess
import sys
from datetime import datetime, time, timedelta

import pytest
from django.utils import timezone

from portal.booking.models import Appointment
from portal.booking.services import book_appointment
from portal.celery import app as celery_app
from tests.test_worker_e2e import ROOT, WORKER_START_TIMEOUT, stack_env, stop_process_group, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_beat_sends_tomorrows_reminder_once(tmp_path, settings, patient, make_slot, private_storage):
    settings.MODEL_DIR = tmp_path / "no-models"
    tomorrow_noon = timezone.make_aware(datetime.combine(timezone.localdate() + timedelta(days=1), time(12, 0)))
    appointment = book_appointment(
        patient=patient, slot=make_slot((tomorrow_noon - timezone.now()).total_seconds() / 3600), consent_care=True
    )
    mail_dir = tmp_path / "mail"
    celery_app.control.purge()
    log_path = tmp_path / "worker.log"
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "--beat", "--concurrency", "1",
             "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--hostname", f"beat-{tmp_path.name}@%h"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env=stack_env(settings.CELERY_BROKER_URL, PORTAL_VAR_DIR=str(tmp_path), BOOKING_REMINDER_INTERVAL_SECONDS="1",
                          EMAIL_URL=f"filemail:///{mail_dir}"),  # the URL path keeps the leading slash
        )
    try:
        wait_for(lambda: Appointment.objects.get(pk=appointment.pk).reminder_sent_at is not None,
                 WORKER_START_TIMEOUT, "the reminder", log_path)
        wait_for(lambda: mail_dir.exists() and any(mail_dir.iterdir()), 30, "the email file", log_path)
        wait_for(lambda: log_path.read_text(errors="replace").count("send_reminders_task") >= 6, 30,
                 "more beat runs", log_path)  # later runs find nothing more to send
    finally:
        stop_process_group(worker)

    (message,) = [path.read_text() for path in mail_dir.iterdir()]
    assert f"To: {patient.email}" in message and appointment.reference in message and "tomorrow" in message
