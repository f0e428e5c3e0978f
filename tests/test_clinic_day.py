"""Issue 23: a clinic's day without surprises (rescheduling keeps the site, retakes settle, no retake
loop, cancelled appointments take no photos, closures, ground-truth warnings, the flagged filter)."""
from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from portal.booking.models import Clinic, Slot
from portal.booking.services import reschedule_appointment
from triage.models import AuditEvent, Decision, Outcome
from triage.permissions import CLINICIANS_GROUP
from triage.services import record_decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_site(service):
    """A second site whose name sorts before the booked one's ("Test Clinic"), with a free slot."""
    site = Clinic.objects.create(name="Another Clinic", address="2 River Road")
    Slot.objects.create(clinic=site, service=service, starts_at=timezone.now().replace(microsecond=0) + timedelta(hours=50))
    return site


# Rescheduling keeps the site ---------------------------------------------------------------------


def test_reschedule_page_starts_on_the_booked_site(client, patient, appointment, make_slot, other_site):
    make_slot(72)
    client.force_login(patient)

    page = client.get(reverse("appointment-reschedule", args=[appointment.reference]))

    assert page.context["site"] == appointment.slot.clinic
    assert all(slot.clinic == appointment.slot.clinic for slot in page.context["times"])


def test_moving_to_another_site_is_refused_unless_asked_for(patient, appointment, other_site):
    elsewhere = other_site.slots.get()
    original = appointment.slot

    with pytest.raises(ValidationError) as refused:
        reschedule_appointment(appointment=appointment, slot=elsewhere, actor=patient)
    assert refused.value.code == "other_site"
    appointment.refresh_from_db()
    assert appointment.slot == original

    reschedule_appointment(appointment=appointment, slot=elsewhere, actor=patient, change_site=True)
    appointment.refresh_from_db()
    assert appointment.slot == elsewhere
    moved = AuditEvent.objects.get(case_reference=appointment.reference, action="change_site")
    assert (moved.detail["from_site"], moved.detail["to_site"]) == ("Test Clinic", "Another Clinic")


def test_reschedule_page_asks_before_changing_site(client, patient, appointment, other_site):
    client.force_login(patient)
    url = reverse("appointment-reschedule", args=[appointment.reference])
    elsewhere = other_site.slots.get()
    query = f"?service={elsewhere.service_id}&site={other_site.pk}"

    page = client.get(url + query).content.decode()
    assert "Yes, move my appointment to Another Clinic" in page

    refused = client.post(url + query, {"slot": elsewhere.pk})
    assert refused.status_code == 400
    appointment.refresh_from_db()
    assert appointment.slot.clinic.name == "Test Clinic"

    client.post(url + query, {"slot": elsewhere.pk, "change_site": "on"})
    appointment.refresh_from_db()
    assert appointment.slot == elsewhere


def test_a_decided_case_that_moves_site_is_told_to_the_new_sites_staff(
    client, patient, appointment, photo, clinician, make_staff, other_site, celery_eager,
    django_capture_on_commit_callbacks,
):
    record_decision(case=appointment.case, clinician=clinician, outcome=Outcome.SUSPECTED,
                    action=Decision.Action.ISOLATION_ROOM)
    new_site_clinician = make_staff("river-road", CLINICIANS_GROUP, clinics=[other_site], on_duty=True)
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        reschedule_appointment(appointment=appointment, slot=other_site.slots.get(), actor=patient, change_site=True)

    told = [message for message in mail.outbox if new_site_clinician.email in message.to]
    assert len(told) == 1
    assert "moved" in told[0].subject and "Test Clinic" in told[0].body and "Isolation room" in told[0].body
    client.force_login(new_site_clinician)
    page = client.get(reverse("staff-case", args=[appointment.case.pk])).content.decode()
    assert "Moved from Test Clinic to Another Clinic" in page


def test_api_moves_to_another_site_only_when_asked(patient, appointment, other_site):
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_login(patient)
    url = reverse("api-my-appointment-reschedule", args=[appointment.reference])
    elsewhere = other_site.slots.get()

    refused = api.post(url, {"slot": elsewhere.pk}, format="json")
    assert refused.status_code == 400 and "Another Clinic" in str(refused.json())
    assert api.post(url, {"slot": elsewhere.pk, "change_site": True}, format="json").status_code == 200
    appointment.refresh_from_db()
    assert appointment.slot == elsewhere
