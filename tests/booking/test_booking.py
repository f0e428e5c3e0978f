import threading
from datetime import datetime, time, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.core import mail
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone, translation

from core.models import AuditEvent
from portal.booking.consent import CARE_TEXT_VERSION, RESEARCH_TEXT_VERSION
from portal.booking.models import Appointment, Clinic, ConsentRecord, Schedule, Service, Slot
from portal.booking.selectors import free_days, free_slots, free_times
from portal.booking.services import (
    book_appointment,
    cancel_appointment,
    generate_slots,
    reschedule_appointment,
    send_due_reminders,
    set_research_consent,
)
from portal.booking.tasks import send_reminders_task
from tests.conftest import QUESTIONNAIRE_ANSWERS
from triage.models import Case, Outcome
from triage.permissions import is_clinician

pytestmark = pytest.mark.django_db

SLOT_TAKEN = "That time was just taken — please choose another."


def book(patient, slot, **answers):
    return book_appointment(patient=patient, slot=slot, consent_care=True, **answers)


def next_weekday(weekday, after=None):
    day = (after or timezone.localdate()) + timedelta(days=1)
    while day.weekday() != weekday:
        day += timedelta(days=1)
    return day


# Slots from schedules ---------------------------------------------------------------------------


def test_schedule_produces_slots_of_the_service_length_once(clinic, service, clinician):
    monday = next_weekday(0)
    Schedule.objects.create(
        clinician=clinician,
        clinic=clinic,
        service=service,
        weekday=0,
        start_time=time(9, 0),
        end_time=time(10, 10),
        valid_from=monday,
        valid_until=monday,
    )

    assert generate_slots(days_ahead=14) == 3  # 09:00, 09:20, 09:40 (10:00 would end after 10:10)
    assert generate_slots(days_ahead=14) == 0  # idempotent

    starts = [timezone.localtime(slot.starts_at) for slot in Slot.objects.order_by("starts_at")]
    assert [(s.date(), s.time()) for s in starts] == [
        (monday, time(9, 0)),
        (monday, time(9, 20)),
        (monday, time(9, 40)),
    ]
    assert {(slot.clinician, slot.service, slot.duration_minutes) for slot in Slot.objects.all()} == {
        (clinician, service, 20)
    }


def test_free_days_then_that_days_free_times(patient, clinic, service, make_slot):
    tomorrow_1, tomorrow_2, later = make_slot(24), make_slot(25), make_slot(24 * 3)
    book(patient, tomorrow_1)

    days = free_days(clinic=clinic, service=service)
    assert days == [(timezone.localdate(tomorrow_2.starts_at), 1), (timezone.localdate(later.starts_at), 1)]
    assert free_times(clinic=clinic, service=service, day=days[0][0]) == [tomorrow_2]
    other_site = Clinic.objects.create(name="Elsewhere")
    assert free_days(clinic=other_site, service=service) == []


def test_free_slots_exclude_taken_and_past_slots(appointment, make_slot):
    free = make_slot(48)
    make_slot(-2)

    assert list(free_slots()) == [free]


# Booking ----------------------------------------------------------------------------------------


def test_booking_stores_answers_consents_and_opens_the_case(patient, slot, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        appointment = book(patient, slot, questionnaire=QUESTIONNAIRE_ANSWERS, consent_research=True, language="es")

    assert appointment.status == Appointment.Status.BOOKED
    assert appointment.questionnaire == QUESTIONNAIRE_ANSWERS
    assert Case.objects.get(appointment=appointment).outcome == Outcome.PENDING
    records = {(r.kind, r.given, r.text_version) for r in appointment.consent_records.all()}
    assert records == {("care", True, CARE_TEXT_VERSION), ("research", True, RESEARCH_TEXT_VERSION)}
    assert appointment.consent_care and appointment.consent_research
    (email,) = mail.outbox
    assert email.to == [patient.email]
    assert appointment.reference in email.subject and appointment.reference in email.body
    assert "Su cita" in email.subject  # in the language the patient booked in
    assert settings.PORTAL_BASE_URL + "/accounts/link/" in email.body
    assert settings.PORTAL_BASE_URL + reverse("patient-information") in email.body


def test_second_booking_of_a_slot_is_refused_with_a_clear_message(patient, other_patient, slot):
    book(patient, slot)

    with pytest.raises(ValidationError) as refused:
        book(other_patient, slot)

    assert refused.value.messages == [SLOT_TAKEN]
    assert Appointment.objects.count() == Case.objects.count() == 1


def test_database_constraint_refuses_a_double_booking(patient, other_patient, slot):
    """What a booking that slipped past the service would hit."""
    Appointment.objects.create(patient=patient, slot=slot, consent_care=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        Appointment.objects.create(patient=other_patient, slot=slot, consent_care=True)


@pytest.mark.django_db(transaction=True)
def test_two_patients_racing_for_the_last_slot_get_one_booking(patient, other_patient, slot):
    """Two real connections book the same slot at the same moment: one wins, one is told it was taken."""
    if connection.vendor != "postgresql":
        pytest.skip("the race needs PostgreSQL's row locks (CI runs on PostgreSQL)")
    start = threading.Barrier(2)
    outcomes = {}

    def attempt(user):
        try:
            start.wait()
            outcomes[user.username] = book(user, slot).reference
        except ValidationError as error:
            outcomes[user.username] = error.messages[0]
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(user,)) for user in (patient, other_patient)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(outcome == SLOT_TAKEN for outcome in outcomes.values()) == [False, True]
    assert Appointment.objects.filter(slot=slot).count() == Case.objects.count() == 1


def test_cancelled_slot_can_be_booked_again(patient, other_patient, slot):
    cancel_appointment(appointment=book(patient, slot), actor=patient)

    rebooked = book(other_patient, slot)

    assert slot.appointments.filter(status=Appointment.Status.BOOKED).get() == rebooked
    assert Case.objects.get(appointment__patient=patient).is_open is False


def test_booking_needs_care_consent_and_a_future_slot(patient, make_slot):
    with pytest.raises(ValidationError):
        book_appointment(patient=patient, slot=make_slot(24), consent_care=False)
    with pytest.raises(ValidationError):
        book(patient, make_slot(-1))
    assert not Appointment.objects.exists()


# Changing a booking -----------------------------------------------------------------------------


def test_reschedule_keeps_the_case_and_emails_the_new_time(
    photo, appointment, make_slot, django_capture_on_commit_callbacks
):
    later = make_slot(72)
    with django_capture_on_commit_callbacks(execute=True):
        reschedule_appointment(appointment=appointment, slot=later, actor=appointment.patient)

    appointment.refresh_from_db()
    assert appointment.slot == later and appointment.case.photos.get() == photo
    assert "moved" in mail.outbox[-1].subject


def test_booking_changes_are_audited_with_who_made_them(patient, slot, make_slot, clinician):
    appointment = book(patient, slot)
    later = make_slot(72)
    reschedule_appointment(appointment=appointment, slot=later, actor=patient)
    cancel_appointment(appointment=appointment, actor=clinician)
    cancel_appointment(appointment=appointment, actor=clinician)  # already cancelled: nothing happens, nothing logged

    events = AuditEvent.objects.filter(case_reference=appointment.reference).order_by("id")
    assert [(event.action, event.actor) for event in events] == [
        ("book_appointment", patient),
        ("reschedule_appointment", patient),
        ("cancel_appointment", clinician),
    ]
    assert events[1].detail["slot"] == later.pk


def test_reschedule_to_a_taken_slot_is_refused(appointment, other_patient, make_slot):
    taken = make_slot(72)
    book(other_patient, taken)
    original = appointment.slot

    with pytest.raises(ValidationError) as refused:
        reschedule_appointment(appointment=appointment, slot=taken, actor=appointment.patient)

    assert refused.value.messages == [SLOT_TAKEN]
    appointment.refresh_from_db()
    assert appointment.slot == original


def test_changes_are_refused_after_the_cutoff(settings, patient, make_slot):
    settings.BOOKING_CHANGE_CUTOFF_HOURS = 2
    soon = book(patient, make_slot(1.5))

    for change in (
        lambda: cancel_appointment(appointment=soon, actor=patient),
        lambda: reschedule_appointment(appointment=soon, slot=make_slot(48), actor=patient),
    ):
        with pytest.raises(ValidationError) as refused:
            change()
        assert refused.value.code == "past_cutoff"
    soon.refresh_from_db()
    assert soon.status == Appointment.Status.BOOKED


def test_research_consent_is_withdrawn_with_a_record(appointment, patient):
    set_research_consent(appointment=appointment, given=True, actor=patient)
    set_research_consent(appointment=appointment, given=False, actor=patient)

    appointment.refresh_from_db()
    assert appointment.consent_research is False and appointment.consent_care is True
    latest = appointment.consent_records.filter(kind=ConsentRecord.Kind.RESEARCH).first()
    assert (latest.given, latest.text_version, latest.recorded_by) == (False, RESEARCH_TEXT_VERSION, patient)
    assert appointment.consent_records.filter(kind="research").count() == 3  # at booking, opt-in, withdrawal


# Reminders --------------------------------------------------------------------------------------


def test_reminder_goes_once_to_tomorrows_patients_only(
    patient, other_patient, make_slot, django_capture_on_commit_callbacks
):
    now = timezone.now()
    tomorrow_noon = timezone.make_aware(datetime.combine(timezone.localdate() + timedelta(days=1), time(12, 0)))
    hours = (tomorrow_noon - now).total_seconds() / 3600
    tomorrow = book(patient, make_slot(hours))
    book(other_patient, make_slot(hours + 48))
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        assert send_reminders_task() == 1
        assert send_due_reminders() == 0

    (reminder,) = mail.outbox
    assert reminder.to == [patient.email] and tomorrow.reference in reminder.subject
    assert "celery" not in reminder.body.lower()
    assert (
        settings.CELERY_BEAT_SCHEDULE["send-appointment-reminders"]["task"]
        == "portal.booking.tasks.send_reminders_task"
    )


# Questionnaire ----------------------------------------------------------------------------------


def test_questionnaire_answers_read_as_labels_in_the_active_language(appointment):
    answers = dict(appointment.questionnaire_answers())

    assert answers["Have you had a fever or felt hot and shivery?"] == "Yes"
    assert answers["Where are the spots or sores?"] == "Hands or arms, Genital area"
    assert answers["When did the first spot, sore or other symptom appear?"] == "20 November 2026"
    assert answers["If you travelled, where to?"] == "Not answered"
    with translation.override("es"):
        assert "¿Ha tenido fiebre o ha sentido calor y escalofríos?" in dict(appointment.questionnaire_answers())


# Pages ------------------------------------------------------------------------------------------


def test_booking_page_shows_one_day_of_times_and_books_with_answers(client, patient, clinic, service, make_slot):
    # Fixed times of day (10:00 and 11:00 tomorrow, 10:00 the day after), whatever the time the test runs.
    tomorrow_10 = timezone.localtime().replace(hour=10, minute=0, second=0, microsecond=0) + timedelta(days=1)
    first, same_day, next_day = (
        Slot.objects.create(clinic=clinic, service=service, starts_at=tomorrow_10 + offset)
        for offset in (timedelta(0), timedelta(hours=1), timedelta(days=1))
    )
    client.force_login(patient)

    def offered(page, slot):
        return f'name="slot" value="{slot.pk}"' in page

    page = client.get(reverse("book")).content.decode()
    assert offered(page, first) and offered(page, same_day) and not offered(page, next_day)

    day = timezone.localdate(next_day.starts_at).isoformat()
    query = f"?service={service.pk}&site={clinic.pk}&day={day}"
    page = client.get(reverse("book") + query).content.decode()
    assert offered(page, next_day) and not offered(page, first)

    form = {
        "slot": next_day.pk,
        "fever": "no",
        "swollen_lymph_nodes": "no",
        "lesion_sites": ["mouth"],
        "lesion_count": "1",
        "pain_itch": "itch",
        "close_contact": "unsure",
        "travel": "yes",
        "travel_where": "Lisbon",
        "vaccination": "two_doses",
        "onset_date": "",
        "consent_care": "on",
    }
    response = client.post(reverse("book") + query, form)
    appointment = Appointment.objects.get(patient=patient)
    assert response.status_code == 302 and response["Location"] == reverse("appointment", args=[appointment.reference])
    assert appointment.questionnaire == {
        **{key: "" for key in ("notes",)},
        "version": 1,
        "onset_date": None,
        "fever": "no",
        "swollen_lymph_nodes": "no",
        "lesion_sites": ["mouth"],
        "lesion_count": "1",
        "pain_itch": "itch",
        "close_contact": "unsure",
        "travel": "yes",
        "travel_where": "Lisbon",
        "vaccination": "two_doses",
    }
    assert appointment.consent_research is False


def test_booking_page_shows_a_taken_slot_clearly(client, patient, other_patient, slot):
    form = {"slot": slot.pk, **{k: v for k, v in QUESTIONNAIRE_ANSWERS.items() if k != "version"}, "consent_care": "on"}
    client.force_login(other_patient)
    assert client.post(reverse("book"), form).status_code == 302

    client.force_login(patient)
    response = client.post(reverse("book"), form)

    assert response.status_code == 200
    assert "That time is no longer available" in response.content.decode()


def test_missing_answers_and_consent_are_listed_and_nothing_is_booked(client, patient, slot):
    client.force_login(patient)
    response = client.post(reverse("book"), {"slot": slot.pk})

    page = response.content.decode()
    assert response.status_code == 200 and "There is a problem" in page
    assert "We need your consent" in page and 'href="#id_fever"' in page
    assert not Appointment.objects.exists()


def test_home_lists_own_appointments_and_patient_can_reschedule_and_cancel(client, patient, appointment, make_slot):
    later = make_slot(96)
    client.force_login(patient)
    assert appointment.reference in client.get(reverse("home")).content.decode()

    client.post(reverse("appointment-reschedule", args=[appointment.reference]), {"slot": later.pk})
    appointment.refresh_from_db()
    assert appointment.slot == later

    client.post(reverse("appointment-cancel", args=[appointment.reference]))
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED


def test_appointment_page_withdraws_research_consent(client, patient, appointment):
    set_research_consent(appointment=appointment, given=True, actor=patient)
    client.force_login(patient)

    client.post(reverse("appointment-research-consent", args=[appointment.reference]), {"given": "no"})

    appointment.refresh_from_db()
    assert appointment.consent_research is False


def test_information_page_is_public_editable_and_translated(client, admin_user):
    english = client.get(reverse("patient-information"))
    assert english.status_code == 200 and "How it spreads" in english.content.decode()
    spanish = client.get(reverse("patient-information"), HTTP_ACCEPT_LANGUAGE="es")
    assert "Cómo se transmite" in spanish.content.decode() and "Sobre la mpox" in spanish.content.decode()

    client.force_login(admin_user)
    assert client.get(reverse("admin:booking_patientinformation_changelist")).status_code == 200


def test_patient_pages_follow_the_language_switcher(client, patient, appointment):
    client.force_login(patient)
    client.post(reverse("set_language"), {"language": "es", "next": reverse("home")})

    page = client.get(reverse("appointment", args=[appointment.reference])).content.decode()
    assert '<html lang="es">' in page and "Su cita" in page and "Enviar fotos" in page


def test_seed_demo_is_idempotent(db, private_storage, enqueued):
    started = timezone.now()
    call_command("seed_demo", stdout=None)
    slots, appointments = Slot.objects.count(), Appointment.objects.count()
    call_command("seed_demo", stdout=None)

    assert (Slot.objects.count(), Appointment.objects.count()) == (slots, appointments)
    # Past slots are the synthetic history's visits, never free ones.
    assert not Slot.objects.filter(starts_at__lte=started, appointments__isnull=True).exists()
    assert Service.objects.count() == 2 and Clinic.objects.count() == 2
    assert is_clinician(User.objects.get(username="clinician"))
    assert User.objects.get(username="admin").check_password("demo-admin-pass")


def test_a_schedule_saved_in_admin_opens_its_slots(client, admin_user, clinic, service, clinician):
    client.force_login(admin_user)
    monday = next_weekday(0)

    response = client.post(
        reverse("admin:booking_schedule_add"),
        {
            "clinician": clinician.pk,
            "clinic": clinic.pk,
            "service": service.pk,
            "weekday": 0,
            "start_time": "14:00",
            "end_time": "15:00",
            "valid_from": monday.isoformat(),
            "valid_until": monday.isoformat(),
        },
    )

    assert response.status_code == 302
    assert Slot.objects.filter(clinician=clinician, clinic=clinic, service=service).count() == 3


def test_admin_shows_the_answers_and_the_consent_history(client, admin_user, appointment):
    client.force_login(admin_user)

    page = client.get(reverse("admin:booking_appointment_change", args=[appointment.pk])).content.decode()

    assert "Have you had a fever or felt hot and shivery?" in page and RESEARCH_TEXT_VERSION in page
