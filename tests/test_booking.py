from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from portal.booking.models import Appointment, Slot
from portal.booking.selectors import open_slots_by_day
from portal.booking.services import SLOT_TAKEN, book_appointment, cancel_appointment
from triage.models import Case, Outcome
from triage.permissions import is_clinician

pytestmark = pytest.mark.django_db


def book(patient, slot, **answers):
    return book_appointment(patient=patient, slot=slot, consent_care=True, **answers)


def test_booking_creates_appointment_and_its_case(patient, slot):
    appointment = book(patient, slot, symptoms="Rash", lesion_onset=timezone.localdate(), consent_research=True)

    assert appointment.status == Appointment.Status.BOOKED
    assert appointment.consent_research is True
    assert Case.objects.get(appointment=appointment).outcome == Outcome.PENDING
    assert len(appointment.reference) == 8


def test_second_booking_of_a_slot_is_refused_with_a_clear_message(patient, other_patient, slot):
    book(patient, slot)

    with pytest.raises(ValidationError) as refused:
        book(other_patient, slot)

    assert refused.value.messages == [SLOT_TAKEN]
    assert Appointment.objects.count() == Case.objects.count() == 1


def test_database_constraint_refuses_a_racing_double_booking(patient, other_patient, slot):
    """What a booking that slipped past the service would hit."""
    Appointment.objects.create(patient=patient, slot=slot, consent_care=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Appointment.objects.create(patient=other_patient, slot=slot, consent_care=True)


def test_cancelled_slot_can_be_booked_again(patient, other_patient, slot):
    cancel_appointment(appointment=book(patient, slot))

    rebooked = book(other_patient, slot)

    assert rebooked.slot == slot
    assert slot.appointments.filter(status=Appointment.Status.BOOKED).get() == rebooked


def test_booking_needs_care_consent_and_a_future_slot(patient, make_slot):
    with pytest.raises(ValidationError):
        book_appointment(patient=patient, slot=make_slot(24), consent_care=False)
    with pytest.raises(ValidationError):
        book(patient, make_slot(-1))
    assert not Appointment.objects.exists()


def test_past_appointment_cannot_be_cancelled(patient, slot, appointment):
    Slot.objects.filter(pk=slot.pk).update(starts_at=timezone.now() - timedelta(hours=1))
    appointment.refresh_from_db()

    with pytest.raises(ValidationError):
        cancel_appointment(appointment=appointment)


def test_open_slots_exclude_taken_and_past_slots(appointment, make_slot):
    free = make_slot(48)
    make_slot(-2)

    offered = [slot for _day, slots in open_slots_by_day() for slot in slots]

    assert offered == [free]


def test_signup_logs_the_new_patient_in(client, db):
    response = client.post(reverse("signup"), {
        "username": "newpatient", "email": "new@example.org",
        "password1": "a-long-unusual-passphrase", "password2": "a-long-unusual-passphrase",
    })

    assert response.status_code == 302
    assert client.get(reverse("home")).context["user"].username == "newpatient"


def test_booking_page_books_and_shows_a_taken_slot_clearly(client, patient, other_patient, slot):
    form = {"slot": slot.pk, "symptoms": "Sores", "consent_care": "on"}
    client.force_login(other_patient)
    assert client.post(reverse("book"), form).status_code == 302

    client.force_login(patient)
    response = client.post(reverse("book"), form)

    assert response.status_code == 200
    assert SLOT_TAKEN in response.content.decode()


def test_home_lists_own_appointments_and_patient_can_cancel(client, patient, appointment):
    client.force_login(patient)
    assert appointment.reference in client.get(reverse("home")).content.decode()

    client.post(reverse("appointment-cancel", args=[appointment.reference]))

    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED


def test_seed_demo_is_idempotent(db, private_storage, enqueued):
    started = timezone.now()
    call_command("seed_demo", stdout=None)
    slots, appointments = Slot.objects.count(), Appointment.objects.count()
    call_command("seed_demo", stdout=None)

    assert (Slot.objects.count(), Appointment.objects.count()) == (slots, appointments)
    # Past slots are the synthetic history's visits, never free ones.
    assert not Slot.objects.filter(starts_at__lte=started, appointments__isnull=True).exists()
    assert is_clinician(User.objects.get(username="clinician"))
    assert User.objects.get(username="admin").check_password("demo-admin-pass")
