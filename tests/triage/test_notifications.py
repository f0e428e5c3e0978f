"""Emails and what the patient is told: a flagged case to the on-duty staff of its site, escalation
of flagged cases still undecided close to the appointment, and the decision to the patient (by
email and on their appointment page), never with a score."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.booking.models import Clinic
from portal.booking.services import book_appointment
from triage.models import Case, Decision, Outcome
from triage.notifications import escalate_due_cases
from triage.permissions import CLINIC_LEADS_GROUP, CLINICIANS_GROUP
from triage.services import accept_photo, record_decision
from triage.tasks import escalate_flagged_cases

pytestmark = pytest.mark.django_db


@pytest.fixture
def flagged_case(
    make_slot, patient, private_storage, enqueued, make_upload, record_result, django_capture_on_commit_callbacks
):
    """flagged_case(hours_from_now, probability=0.9) -> a case whose photo was scored, with the
    on-commit callbacks (the flag email) run."""

    def make(hours_from_now, probability=0.9):
        appointment = book_appointment(patient=patient, slot=make_slot(hours_from_now), consent_care=True)
        photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=make_upload(), body_site="hands")
        with django_capture_on_commit_callbacks(execute=True):
            record_result(photo, probability)
        return Case.objects.get(pk=appointment.case.pk)

    return make


def test_a_newly_flagged_case_emails_the_on_duty_staff_of_its_site_once(
    flagged_case,
    clinician,
    make_staff,
    clinic,
    mailoutbox,
    celery_eager,
    record_result,
    django_capture_on_commit_callbacks,
):
    make_staff("off-duty", CLINICIANS_GROUP, clinics=[clinic], on_duty=False)
    elsewhere = Clinic.objects.create(name="North Site")
    make_staff("north", CLINICIANS_GROUP, clinics=[elsewhere], on_duty=True)

    case = flagged_case(20)

    assert [message.to for message in mailoutbox] == [[clinician.email]]
    message = mailoutbox[0]
    assert case.appointment.reference in message.subject
    assert reverse("staff-case", args=[case.pk]) in message.body
    assert case.appointment.patient.email not in message.body and "%" not in message.body

    with django_capture_on_commit_callbacks(execute=True):
        record_result(case.photos.get(), 0.95)  # still flagged: no second email
    assert len(mailoutbox) == 1


def test_an_unflagged_case_sends_no_email(flagged_case, clinician, mailoutbox, celery_eager):
    flagged_case(20, probability=0.1)
    assert mailoutbox == []


def test_flagged_undecided_cases_are_escalated_two_hours_before_the_appointment_once(
    flagged_case, clinician, make_staff, clinic, mailoutbox, celery_eager
):
    due = flagged_case(1.5)
    not_yet = flagged_case(5)
    decided = flagged_case(1)
    record_decision(case=decided, clinician=clinician, outcome=Outcome.NOT_SUSPECTED, action=Decision.Action.STANDARD)
    flagged_case(1.2, probability=0.1)  # not flagged
    lead = make_staff("lead", CLINIC_LEADS_GROUP, clinics=[clinic])
    mailoutbox.clear()

    assert escalate_flagged_cases() == 1  # the beat task, run in this process

    assert sorted(message.to[0] for message in mailoutbox) == sorted([clinician.email, lead.email])
    assert all(due.appointment.reference in message.subject for message in mailoutbox)
    due.refresh_from_db()
    assert due.escalated_at is not None
    assert escalate_due_cases() == 0  # once per case
    assert escalate_due_cases(now=timezone.now() + timedelta(hours=3.5)) == 1  # `not_yet`, later
    not_yet.refresh_from_db()
    assert not_yet.escalated_at is not None


def test_patient_sees_and_is_emailed_the_clinics_instructions_never_a_score(
    client, prediction, clinician, mailoutbox, celery_eager, django_capture_on_commit_callbacks
):
    case = prediction.photo.case
    appointment_url = reverse("appointment", args=[case.appointment.reference])
    client.force_login(case.appointment.patient)
    assert "Instructions from the clinic" not in client.get(appointment_url).content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=case, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.TELEHEALTH)

    page = client.get(appointment_url).content.decode()
    assert "Instructions from the clinic" in page
    assert str(Decision.DEFAULT_PATIENT_MESSAGES[Decision.Action.TELEHEALTH]) in page
    assert "83%" not in page and "Suspected" not in page
    (email,) = mailoutbox
    assert email.to == [case.appointment.patient.email]
    assert str(Decision.DEFAULT_PATIENT_MESSAGES[Decision.Action.TELEHEALTH]) in email.body
    assert "83" not in email.body and "Suspected" not in email.body
    assert appointment_url in email.body


def test_a_patient_who_booked_in_spanish_gets_the_instructions_in_spanish(
    client, prediction, clinician, mailoutbox, celery_eager, django_capture_on_commit_callbacks
):
    case = prediction.photo.case
    type(case.appointment).objects.filter(pk=case.appointment.pk).update(language="es")
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=case, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.TELEHEALTH)
    client.force_login(case.appointment.patient)

    page = client.get(
        reverse("appointment", args=[case.appointment.reference]), HTTP_ACCEPT_LANGUAGE="es"
    ).content.decode()

    assert "Instrucciones de la clínica" in page and "No venga a la clínica" in page
    (email,) = mailoutbox
    assert email.subject.startswith("Su cita ") and "No venga a la clínica" in email.body
    assert "La clínica ha revisado sus fotos" in email.body


def test_patient_asked_for_a_retake_sees_the_reason_until_they_upload_again(
    client, prediction, clinician, mailoutbox, celery_eager, django_capture_on_commit_callbacks, make_upload
):
    case = prediction.photo.case
    patient = case.appointment.patient
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(
            case=case,
            clinician=clinician,
            outcome=Outcome.RETAKE,
            patient_instructions="The photo is blurred: please hold the phone steady in daylight.",
        )
    client.force_login(patient)
    appointment_url = reverse("appointment", args=[case.appointment.reference])

    page = client.get(appointment_url).content.decode()
    assert "Please send a new photo" in page and "hold the phone steady in daylight" in page
    assert "Please send a new photo" in mailoutbox[0].subject and "hold the phone steady" in mailoutbox[0].body

    response = client.post(appointment_url, {"photos": [make_upload()], "body_site": "hands", "consent_confirm": "on"})
    assert response.status_code == 302
    assert case.photos.count() == 2  # the same appointment
    case.refresh_from_db()
    assert case.outcome == Outcome.PENDING
    assert "Please send a new photo" not in client.get(appointment_url).content.decode()


def test_beat_runs_the_escalation_task(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["escalate-flagged-cases"]
    assert entry["task"] == escalate_flagged_cases.name
    assert entry["schedule"] == settings.ESCALATION_CHECK_SECONDS
