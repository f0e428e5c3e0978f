"""Issue 23: a clinic's day without surprises (rescheduling keeps the site, retakes settle, no retake
loop, cancelled appointments take no photos, closures, ground-truth warnings, the flagged filter)."""

from datetime import datetime, timedelta
from unittest import mock

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from portal.booking.models import Clinic, Slot
from portal.booking.services import reschedule_appointment
from triage.models import Decision, Outcome
from triage.permissions import CLINICIANS_GROUP
from triage.services import record_decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def other_site(service):
    """A second site whose name sorts before the booked one's ("Test Clinic"), with a free slot."""
    site = Clinic.objects.create(name="Another Clinic", address="2 River Road")
    Slot.objects.create(
        clinic=site, service=service, starts_at=timezone.now().replace(microsecond=0) + timedelta(hours=50)
    )
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
    client,
    patient,
    appointment,
    photo,
    clinician,
    make_staff,
    other_site,
    celery_eager,
    django_capture_on_commit_callbacks,
):
    record_decision(
        case=appointment.case, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.ISOLATION_ROOM
    )
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


# Retakes settle, and never loop ------------------------------------------------------------------


def _queue_case(client, clinician, case):
    client.force_login(clinician)
    return next(row for row in client.get(reverse("staff-queue")).context["page"].object_list if row.pk == case.pk)


def test_a_retake_upload_settles_the_photo_it_replaces(
    client, patient, clinician, appointment, photo, record_result, make_upload
):
    from triage.models import Photo
    from triage.services import accept_photo

    record_result(photo, 0.2, reason="blurred")
    assert _queue_case(client, clinician, appointment.case).photos_problem == 1

    accept_photo(
        case=appointment.case, uploaded_by=patient, uploaded_file=make_upload(), body_site=Photo.BodySite.HANDS
    )

    photo.refresh_from_db()
    assert photo.status == Photo.Status.REPLACED and not photo.needs_retake and photo.patient_message == ""
    assert _queue_case(client, clinician, appointment.case).photos_problem == 0
    client.force_login(patient)
    page = client.get(reverse("appointment", args=[appointment.reference])).content.decode()
    assert "badge status-rejected" not in page and f'<p data-retake="{photo.pk}" hidden>' in page


def test_a_final_decision_clears_every_retake_prompt(
    client, patient, clinician, appointment, record_result, make_upload, enqueued
):
    from triage.models import Photo
    from triage.services import accept_photos

    photos = accept_photos(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_files=[make_upload() for _ in range(3)],
        body_site=Photo.BodySite.TRUNK,
    )
    for photo in photos:
        record_result(photo, 0.2, reason="too_bright")
    client.force_login(patient)
    assert (
        client.get(reverse("appointment", args=[appointment.reference])).content.decode().count("badge status-rejected")
        == 3
    )

    record_decision(
        case=appointment.case, clinician=clinician, outcome=Outcome.NOT_SUSPECTED, action=Decision.Action.STANDARD
    )

    client.force_login(patient)
    page = client.get(reverse("appointment", args=[appointment.reference])).content.decode()
    assert "badge status-rejected" not in page
    assert all(f'<p data-retake="{photo.pk}" hidden>' in page for photo in photos)
    assert _queue_case(client, clinician, appointment.case).photos_problem == 0


def test_a_second_unjudgeable_photo_goes_to_a_clinician_as_it_is(
    client, patient, clinician, appointment, photo, record_result, make_upload
):
    from triage.models import Photo
    from triage.services import accept_photo

    record_result(photo, 0.9, reason="too_bright")
    retake = accept_photo(
        case=appointment.case, uploaded_by=patient, uploaded_file=make_upload(), body_site=Photo.BodySite.HANDS
    )
    record_result(retake, 0.9, reason="too_bright")

    retake.refresh_from_db()
    assert retake.status == Photo.Status.AS_IS and not retake.needs_retake
    assert "a clinician will look at your photos as they are" in retake.patient_message
    row = _queue_case(client, clinician, appointment.case)
    assert row.outcome == Outcome.PENDING and row.photos_problem == 0
    client.force_login(patient)
    status = client.get(reverse("appointment-photo-status", args=[appointment.reference])).json()["photos"]
    assert [(photo["status"], photo["retake_needed"]) for photo in status] == [("replaced", False), ("as_is", False)]


# The flagged filter and the badge count the same cases --------------------------------------------


def test_flagged_filter_and_badge_count_the_same_undecided_flagged_cases(
    client,
    clinician,
    patient,
    appointment,
    prediction,
    make_slot,
    make_upload,
    record_result,
):
    from portal.booking.services import book_appointment
    from triage.services import accept_photo

    decided = book_appointment(patient=patient, slot=make_slot(30), consent_care=True).case
    record_result(accept_photo(case=decided, uploaded_by=patient, uploaded_file=make_upload(), body_site="hands"), 0.9)
    record_decision(case=decided, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.TELEHEALTH)
    client.force_login(clinician)

    page = client.get(reverse("staff-queue"), {"status": "flagged"})

    assert [case.pk for case in page.context["page"].object_list] == [appointment.case.pk]
    html = page.content.decode()
    assert '<span class="count">1</span> flagged, undecided' in html
    assert f'href="{reverse("staff-queue")}?status=flagged"' in html
    assert '<input type="radio" name="status" value="flagged" checked> Flagged, undecided' in html


# A cancelled appointment takes no photos and analyses none -----------------------------------------


def test_photos_of_a_cancelled_appointment_are_not_analysed_or_requeued(patient, appointment, photo, model_version):
    from portal.booking.services import cancel_appointment
    from triage import analysis
    from triage.models import Photo, Prediction
    from triage.selectors import photos_to_requeue

    cancel_appointment(appointment=appointment, actor=patient)
    Photo.objects.filter(pk=photo.pk).update(queued_at=None)  # as if the broker had lost it

    assert analysis.analyse_photos([photo.pk]) == []
    assert not Prediction.objects.exists()
    assert photo not in photos_to_requeue()


def test_cancel_asks_for_confirmation_first(client, patient, appointment):
    from portal.booking.models import Appointment

    client.force_login(patient)
    cancel_url = reverse("appointment-cancel", args=[appointment.reference])
    page = client.get(reverse("appointment", args=[appointment.reference])).content.decode()
    assert f'href="{cancel_url}"' in page and f'action="{cancel_url}"' not in page

    confirm = client.get(cancel_url)
    assert confirm.status_code == 200
    html = confirm.content.decode()
    assert (
        "Cancel this appointment?" in html and appointment.slot.clinic.name in html and f'action="{cancel_url}"' in html
    )
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED

    client.post(cancel_url)
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED


# Closures and holidays per site --------------------------------------------------------------------


def _christmas_after(today):
    christmas = today.replace(month=12, day=25)
    return christmas if christmas > today else christmas.replace(year=today.year + 1)


def test_a_closed_day_gets_no_slots_and_offers_none(client, admin_user, patient, clinic, service, clinician):
    from datetime import time

    from portal.booking.models import Closure, Schedule
    from portal.booking.selectors import free_days, free_slots
    from portal.booking.services import generate_slots

    christmas = _christmas_after(timezone.localdate())
    today = christmas - timedelta(days=3)
    Schedule.objects.create(
        clinician=clinician,
        clinic=clinic,
        service=service,
        weekday=christmas.weekday(),
        start_time=time(9, 0),
        end_time=time(10, 0),
        valid_from=today,
    )
    Schedule.objects.create(
        clinician=clinician,
        clinic=clinic,
        service=service,
        weekday=(christmas.weekday() + 1) % 7,
        start_time=time(9, 0),
        end_time=time(10, 0),
        valid_from=today,
    )
    generate_slots(days_ahead=5, today=today)  # slots made before the closure was entered
    assert {timezone.localdate(slot.starts_at) for slot in Slot.objects.all()} == {
        christmas,
        christmas + timedelta(days=1),
    }

    client.force_login(admin_user)
    added = client.post(
        reverse("admin:booking_closure_add"),
        {
            "clinic": clinic.pk,
            "first_day": christmas.isoformat(),
            "last_day": christmas.isoformat(),
            "reason": "Christmas Day",
        },
    )
    assert added.status_code == 302, added.content.decode()[:2000]
    closure = Closure.objects.get()

    three_days_before = timezone.make_aware(datetime.combine(today, time(8)))
    with mock.patch("django.utils.timezone.now", return_value=three_days_before):  # within the booking window
        offered = {timezone.localdate(slot.starts_at) for slot in free_slots(clinic=clinic, service=service)}
        days = [day for day, _count in free_days(clinic=clinic, service=service)]
    assert christmas not in offered and christmas not in days and christmas + timedelta(days=1) in days

    Slot.objects.all().delete()
    generate_slots(days_ahead=5, today=today)
    assert {timezone.localdate(slot.starts_at) for slot in Slot.objects.all()} == {christmas + timedelta(days=1)}
    assert str(closure) == f"Test Clinic closed {christmas:%d %b %Y} (Christmas Day)"


# A negative PCR with a final diagnosis of mpox is confirmed, not slipped in -------------------------


def test_negative_pcr_with_a_diagnosis_of_mpox_needs_confirmation(client, clinician, appointment, photo):
    from rest_framework.test import APIClient

    from triage.models import FinalDiagnosis, LabResult

    case = appointment.case
    today = timezone.localdate().isoformat()
    client.force_login(clinician)
    url = reverse("staff-lab-result", args=[case.pk])

    refused = client.post(url, {"result": "negative", "result_date": today, "diagnosis": "mpox"})
    assert refused.status_code == 400
    assert "contradict" in refused.content.decode() and 'name="confirm_contradiction"' in refused.content.decode()
    assert not LabResult.objects.exists() and not FinalDiagnosis.objects.exists()

    client.post(url, {"result": "negative", "result_date": today, "diagnosis": "mpox", "confirm_contradiction": "on"})
    assert case.lab_results.get().result == "negative" and case.final_diagnoses.get().diagnosis == "mpox"

    api = APIClient()
    api.force_login(clinician)
    api_url = reverse("api-staff-lab-result", args=[case.pk])
    answer = api.post(api_url, {"diagnosis": "herpes", "note": "Re-read"}, format="json")
    assert answer.status_code == 201
    answer = api.post(api_url, {"diagnosis": "mpox", "note": "Clinical picture"}, format="json")
    assert answer.status_code == 400 and "contradict" in str(answer.json())
    assert (
        api.post(
            api_url, {"diagnosis": "mpox", "note": "Clinical picture", "confirm_contradiction": True}, format="json"
        ).status_code
        == 201
    )


# Staff pages -------------------------------------------------------------------------------------


def test_model_card_page_renders_the_markdown_without_raw_html(client, clinician, model_version, tmp_path):
    (tmp_path / "MODEL_CARD.md").write_text(
        "# Model card\n\n## Limits\n\n| Metric | Value |\n|---|---|\n| Sensitivity | 0.97 |\n\n"
        "- **Not** a diagnosis\n\n<script>alert(1)</script>\n\n[bad](javascript:alert(1))\n",
        encoding="utf-8",
    )
    model_version.checkpoint_path = str(tmp_path / "model.pt")
    model_version.save()
    client.force_login(clinician)

    page = client.get(reverse("staff-model-card")).content.decode()

    assert "<h2>Limits</h2>" in page and "<td>Sensitivity</td>" in page and "<strong>Not</strong>" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'href="javascript:' not in page and "<pre" not in page


def test_webhook_events_are_chosen_with_checkboxes(client, admin_user, clinic):
    from portal.integrations.models import WebhookEndpoint

    client.force_login(admin_user)
    add_url = reverse("admin:integrations_webhookendpoint_add")
    form = client.get(add_url).content.decode()
    assert all(f'type="checkbox" name="events" value="{event}"' in form for event in WebhookEndpoint.Event.values)

    saved = client.post(
        add_url,
        {
            "clinic": clinic.pk,
            "url": "https://clinic.example.org/hooks",
            "secret": "whsec_test",
            "events": ["case.flagged", "case.decided"],
            "payload_format": "json",
            "is_active": "on",
        },
    )
    assert saved.status_code == 302, saved.content.decode()[-3000:]
    assert WebhookEndpoint.objects.get().events == ["case.flagged", "case.decided"]


def test_charts_are_drawn_once_per_data_and_long_titles_wrap(monkeypatch):
    import numpy as np

    from modelops import charts

    drawn = []

    def fake_plot_roc(curves, path, title):
        drawn.append(title)
        path.write(b"png")

    monkeypatch.setattr("ml.plots.plot_roc", fake_plot_roc)
    labels, scores = np.array([True, False, True]), np.array([0.9, 0.2, 0.6])
    long_title = "efficientnet_lite0-imagenet-logistic-aug-msld1-2026-11-25: 80 lab-confirmed cases"

    first = charts.roc_chart([("model", labels, scores)], title=long_title)
    assert charts.roc_chart([("model", labels, scores)], title=long_title) == first
    assert len(drawn) == 1 and all(len(line) <= charts.TITLE_WIDTH for line in drawn[0].splitlines())

    charts.roc_chart([("model", labels, np.array([0.9, 0.2, 0.7]))], title=long_title)  # new data: drawn again
    assert len(drawn) == 2


def test_an_upload_racing_a_cancellation_is_refused(patient, appointment, private_storage, enqueued, make_upload):
    from triage.models import Case, Photo
    from triage.services import accept_photo

    loaded_before_the_cancel = Case.objects.get(pk=appointment.case.pk)
    Case.objects.filter(pk=appointment.case.pk).update(is_open=False)  # the cancellation commits meanwhile

    with pytest.raises(ValidationError) as refused:
        accept_photo(case=loaded_before_the_cancel, uploaded_by=patient, uploaded_file=make_upload(), body_site="hands")
    assert refused.value.code == "case_closed"
    assert not Photo.objects.exists() and enqueued == []


def test_a_closure_over_booked_appointments_warns_the_admin(client, admin_user, appointment):
    day = timezone.localdate(appointment.slot.starts_at)
    client.force_login(admin_user)

    page = client.post(
        reverse("admin:booking_closure_add"),
        {
            "clinic": appointment.slot.clinic_id,
            "first_day": day.isoformat(),
            "last_day": day.isoformat(),
            "reason": "Staff training",
        },
        follow=True,
    ).content.decode()

    assert (
        f"1 appointment(s) are booked at Test Clinic on these days and were not moved: {appointment.reference}" in page
    )
