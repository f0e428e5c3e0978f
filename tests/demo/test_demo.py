"""The demo writes rows and queues nothing (issue 23): after `seed_demo` no analysis, email or webhook
waits on the broker, so a new user's first photo is the first thing the worker does.
"""

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import transaction

from demo.factories import AppointmentFactory, ClinicFactory, UserFactory
from demo.history import without_after_commit_work
from demo.management.commands.seed_demo import DEMO_CLINIC, DEMO_SITES
from portal.booking.models import Appointment, Clinic
from portal.celery import app as celery_app
from portal.integrations.models import WebhookDelivery, WebhookEndpoint
from triage.models import Case, Decision, Photo


def messages_waiting():
    """{queue: messages waiting} on the configured broker (Redis in CI, else the filesystem broker)."""
    with celery_app.connection_for_read() as connection:
        channel = connection.default_channel
        return {name: channel.queue_declare(queue=name).message_count for name in celery_app.amqp.queues}


@pytest.mark.django_db(transaction=True)
def test_seeding_the_demo_leaves_nothing_queued(private_storage):
    """Real commits on the real broker: before the fix ~90 analyses and ~80 patient emails were queued."""
    clinic = ClinicFactory(name=DEMO_CLINIC, address=DEMO_SITES[DEMO_CLINIC])
    WebhookEndpoint.objects.create(clinic=clinic, url="https://booking.example.org/hook")  # listens to every event
    celery_app.control.purge()

    call_command("seed_demo", stdout=None)

    assert Photo.objects.filter(status=Photo.Status.ANALYSED).count() >= 80  # the history is there...
    assert Decision.objects.count() >= 70 and Case.objects.filter(flagged=True).exists()
    assert messages_waiting() == {"inference": 0, "default": 0}  # ...and nothing waits for the worker
    assert not WebhookDelivery.objects.exists()
    assert mail.outbox == []


def test_only_the_blocks_own_after_commit_work_is_dropped(db, django_capture_on_commit_callbacks):
    ran = []
    with django_capture_on_commit_callbacks(execute=True):
        transaction.on_commit(lambda: ran.append("before"))
        with without_after_commit_work():
            transaction.on_commit(lambda: ran.append("inside"))
        transaction.on_commit(lambda: ran.append("after"))
    assert ran == ["before", "after"]


def test_a_failing_block_is_rolled_back_with_its_after_commit_work(db, django_capture_on_commit_callbacks):
    ran = []
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError):
        with without_after_commit_work():
            ClinicFactory(name="Rolled back")
            transaction.on_commit(lambda: ran.append("inside"))
            raise RuntimeError
    assert ran == [] and not Clinic.objects.filter(name="Rolled back").exists()


def test_an_appointment_from_the_factory_has_its_consents_and_open_case(db):
    appointment = AppointmentFactory(
        patient=UserFactory(username="ana"), slot__clinic=ClinicFactory(name="North"), consent_research=True
    )
    appointment = Appointment.objects.get(pk=appointment.pk)
    assert appointment.case.is_open and appointment.slot.clinic.name == "North"
    assert sorted((record.kind, record.given) for record in appointment.consent_records.all()) == [
        ("care", True),
        ("research", True),
    ]
    assert not appointment.patient.has_usable_password()  # a factory user signs in only with a given password
