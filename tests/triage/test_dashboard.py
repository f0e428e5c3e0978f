"""Staff dashboard: queue order, filters, search and pagination; the case page; decisions with
consistent outcome + action pairs, retakes, countersignature and claims; roles and site scoping;
the flagged badge; the CSV export."""

import csv
import io
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from portal.booking.models import Clinic, Service, Slot
from portal.booking.services import book_appointment, cancel_appointment
from registry.versions import activate_model_version
from triage.models import Case, Decision, Outcome, Photo, PhotoReason
from triage.permissions import AUDITORS_GROUP, CLINIC_LEADS_GROUP, CLINICIANS_GROUP, PATIENTS_GROUP, can_view_case
from triage.selectors import case_queue, flagged_undecided_count
from triage.services import accept_photo, claim_case, countersign_decision, record_decision, release_case

pytestmark = pytest.mark.django_db


def slot_at(clinic, starts_at):
    """A slot at another site (the `service` fixture's service, made once)."""
    service = Service.objects.get_or_create(name="Skin lesion review", defaults={"duration_minutes": 20})[0]
    return Slot.objects.create(clinic=clinic, service=service, starts_at=starts_at)


@pytest.fixture
def case_with_photo(make_slot, other_patient, private_storage, enqueued, make_upload, record_result):
    """case_with_photo(hours_from_now, probability=None, slot=None) -> Case with one photo,
    analysed when a probability is given (flagged at 0.5 or more)."""

    def make(hours_from_now, probability=None, reason="", slot=None):
        slot = slot or make_slot(hours_from_now)
        appointment = book_appointment(patient=other_patient, slot=slot, consent_care=True)
        photo = accept_photo(
            case=appointment.case,
            uploaded_by=other_patient,
            uploaded_file=make_upload(),
            body_site=Photo.BodySite.TRUNK,
        )
        if probability is not None:
            record_result(photo, probability, reason)
        return Case.objects.get(pk=appointment.case.pk)

    return make


@pytest.fixture
def other_clinic(db):
    return Clinic.objects.create(name="North Site", address="2 North Road")


def decide(case, clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.ISOLATION_ROOM, **extra):
    return record_decision(case=case, clinician=clinician, outcome=outcome, action=action, **extra)


# Queue ------------------------------------------------------------------------------------------


def test_queue_puts_flagged_undecided_first_then_other_undecided_then_retakes_then_decided(case_with_photo, clinician):
    soon_unscored = case_with_photo(2)
    later_low = case_with_photo(30, probability=0.2)
    flagged_late = case_with_photo(50, probability=0.9)
    flagged_soon = case_with_photo(40, probability=0.6)
    decided = case_with_photo(3, probability=0.95)
    decide(decided, clinician, action=Decision.Action.TELEHEALTH)
    retake = case_with_photo(4, probability=0.7)
    decide(retake, clinician, outcome=Outcome.RETAKE, action="", patient_instructions="Too blurred to judge.")
    cancel_appointment(appointment=case_with_photo(5).appointment, actor=None)  # cancellable: before the cut-off

    assert list(case_queue(site_ids=None)) == [flagged_soon, flagged_late, soon_unscored, later_low, retake, decided]
    assert list(case_queue(site_ids=None, status="flagged")) == [
        flagged_soon,
        flagged_late,
    ]  # undecided only, as the badge
    assert list(case_queue(site_ids=None, status="undecided")) == [flagged_soon, flagged_late, soon_unscored, later_low]
    assert list(case_queue(site_ids=None, status="decided")) == [decided]
    assert list(case_queue(site_ids=None, status="retake")) == [retake]


def test_queue_filters_by_day_site_claim_and_search(case_with_photo, clinician, clinic, other_clinic, other_patient):
    now = timezone.now()
    hours_to_midnight = (
        timezone.localtime(now).replace(hour=23, minute=59) - timezone.localtime(now)
    ).total_seconds() / 3600
    today = case_with_photo(min(0.5, hours_to_midnight / 2)) if hours_to_midnight > 0.2 else None
    in_three_days = case_with_photo(72)
    in_ten_days = case_with_photo(240)
    north = case_with_photo(0, slot=slot_at(other_clinic, now + timedelta(hours=100)))
    claim_case(case=in_three_days, clinician=clinician)
    other_patient.first_name, other_patient.last_name = "Ada", "Lovelace"
    other_patient.save()

    if today is not None:
        assert list(case_queue(site_ids=None, period="today")) == [today]
    week = list(case_queue(site_ids=None, period="week"))
    assert in_three_days in week and in_ten_days not in week and north in week
    assert list(case_queue(site_ids=None, site=other_clinic.pk)) == [north]
    assert list(case_queue(site_ids={clinic.pk}, site=other_clinic.pk)) == []  # a filter never widens the scope
    assert list(case_queue(site_ids=None, claimed_by=clinician)) == [in_three_days]
    reference = in_ten_days.appointment.reference
    assert list(case_queue(site_ids=None, search=reference.lower())) == [in_ten_days]
    assert len(case_queue(site_ids=None, search="ada lovelace")) == (4 if today else 3)
    assert list(case_queue(site_ids=None, search="nobody")) == []


def test_queue_shows_each_photos_outcome_and_not_assessable_photos_never_flag(case_with_photo, clinician, client):
    judged_out = case_with_photo(4, probability=0.97, reason="no_lesion")
    suspected = case_with_photo(5, probability=0.7)
    assert list(case_queue(site_ids=None, status="flagged")) == [suspected]
    judged_out.refresh_from_db()
    assert not judged_out.flagged and judged_out.max_probability is None

    client.force_login(clinician)
    page = client.get(reverse("staff-queue")).content.decode()
    assert "1 not assessable" in page and "1 suspected mpox" in page
    assert "97%" not in page  # an unusable score is no case's highest score


def test_case_page_explains_a_photo_that_is_not_assessable(case_with_photo, clinician, client):
    case = case_with_photo(4, probability=0.97, reason="blurred")
    client.force_login(clinician)
    page = client.get(reverse("staff-case", args=[case.pk])).content.decode()
    assert "Not assessable" in page and "Blurred:" in page
    assert "not used: the photo is not assessable" in page and "Above threshold" not in page


def test_cases_without_photos_are_not_queued(appointment):
    assert not case_queue(site_ids=None).exists()


def test_queue_page_shows_score_threshold_photos_warnings_and_claims(client, clinician, prediction, make_staff, clinic):
    case = prediction.photo.case
    Photo.objects.create(
        case=case,
        uploaded_by=case.appointment.patient,
        body_site="hands",
        width=10,
        height=10,
        sha256="0" * 64,
        status=Photo.Status.REJECTED,
        status_reason=PhotoReason.TOO_DARK,
        image="photos/x.jpg",
    )
    colleague = make_staff("colleague", CLINICIANS_GROUP, clinics=[clinic])
    claim_case(case=case, clinician=colleague)
    client.force_login(clinician)

    page = client.get(reverse("staff-queue"), {"status": "flagged"}).content.decode()

    assert case.appointment.reference in page and case.appointment.patient.email in page
    assert "83%" in page and "threshold 50%" in page
    assert "1 needs a retake" in page and "Too dark" in page
    assert "colleague" in page  # who has it open
    assert 'id="flagged-badge"' in page and '<span class="count">1</span>' in page


def test_queue_paginates_and_keeps_the_filters(client, clinician, case_with_photo, settings):
    settings.QUEUE_PAGE_SIZE = 2
    for hours in (5, 6, 7):
        case_with_photo(hours, probability=0.9)
    client.force_login(clinician)

    first = client.get(reverse("staff-queue"), {"status": "flagged"}).content.decode()
    second = client.get(reverse("staff-queue"), {"status": "flagged", "page": 2}).content.decode()

    assert "page 1 of 2" in first and "?status=flagged&amp;page=2" in first
    assert second.count('class="ref"') == 1


def test_unreadable_filters_fall_back_to_defaults(client, clinician, prediction):
    client.force_login(clinician)

    response = client.get(reverse("staff-queue"), {"status": "bogus", "site": "x", "period": "'; drop", "page": "zz"})

    assert response.status_code == 200
    assert prediction.photo.case.appointment.reference in response.content.decode()


def test_badge_counts_undecided_flagged_cases_of_my_sites_and_is_polled_with_htmx(
    client, clinician, case_with_photo, other_clinic, make_slot
):
    case_with_photo(5, probability=0.9)
    decided = case_with_photo(6, probability=0.9)
    decide(decided, clinician)
    case_with_photo(7, probability=0.1)
    case_with_photo(0, probability=0.9, slot=slot_at(other_clinic, timezone.now() + timedelta(hours=9)))
    client.force_login(clinician)

    assert flagged_undecided_count(site_ids={decided.clinic_id}) == 1
    page = client.get(reverse("staff-model-card")).content.decode()  # any staff page
    assert 'hx-get="/staff/badge/"' in page and 'hx-trigger="every 30s"' in page
    assert "django_htmx/htmx-2.min.js" in page  # htmx served from static, not a CDN
    partial = client.get(reverse("staff-badge"), headers={"HX-Request": "true"})
    assert partial.status_code == 200 and '<span class="count">1</span>' in partial.content.decode()
    assert "<html" not in partial.content.decode()
    assert client.get(reverse("staff-badge")).status_code == 302  # not htmx: to the queue


# Case page --------------------------------------------------------------------------------------


def test_case_page_shows_photo_crop_heatmap_scores_history_and_is_audited(client, clinician, prediction, model_version):
    older_time = timezone.now() - timedelta(days=1)
    prediction.__class__.objects.filter(pk=prediction.pk).update(created_at=older_time)
    newer = prediction.__class__.objects.create(
        photo=prediction.photo,
        model_version=model_version,
        probability=0.41,
        threshold=0.5,
        flagged=False,
        roi_source="clinician",
        roi_x0=0,
        roi_y0=0,
        roi_x1=100,
        roi_y1=60,
        heatmap=prediction.heatmap.name,
    )
    case = prediction.photo.case
    client.force_login(clinician)

    page = client.get(reverse("staff-case", args=[case.pk])).content.decode()

    assert "41%" in page and "83%" in page  # latest, then history
    assert "left:0.00%;top:0.00%;width:50.00%;height:50.00%" in page  # ROI box over the 200×120 photo
    assert "aspect-ratio:100/60" in page and "width:200.00%;left:0.00%;top:0.00%" in page  # the ROI crop
    assert reverse("prediction-heatmap", args=[prediction.photo_id, newer.pk]) in page
    assert "data-heatmap-toggle" in page and "data-heatmap-opacity" in page and "data-zoom" in page
    assert model_version.version in page and "Threshold" in page
    assert "Two blisters on the hand." in page and "Care and image analysis: yes" in page
    assert "not a diagnosis" in page
    assert AuditEvent.objects.filter(actor=clinician, action="view_case", object_id=str(case.pk)).exists()


def test_opening_a_case_claims_it_and_another_clinician_sees_who_has_it(
    client, clinician, prediction, make_staff, clinic
):
    case = prediction.photo.case
    client.force_login(clinician)
    client.get(reverse("staff-case", args=[case.pk]))
    case.refresh_from_db()
    assert case.claim_holder == clinician

    colleague = make_staff("colleague", CLINICIANS_GROUP, clinics=[clinic])
    client.force_login(colleague)
    page = client.get(reverse("staff-case", args=[case.pk])).content.decode()
    assert "is working on this case" in page and "Take over this case" in page
    assert "Record a decision" not in page
    refused = client.post(reverse("staff-decide", args=[case.pk]), {"outcome": "not_suspected", "action": "standard"})
    assert refused.status_code == 400 and "working on this case" in refused.content.decode()

    client.post(reverse("staff-claim", args=[case.pk]))
    case.refresh_from_db()
    assert case.claim_holder == colleague
    assert AuditEvent.objects.filter(actor=colleague, action="take_over_case").exists()


def test_a_claim_runs_out_and_can_be_released(clinician, prediction, make_staff, clinic):
    case = prediction.photo.case
    colleague = make_staff("colleague", CLINICIANS_GROUP, clinics=[clinic])
    claim_case(case=case, clinician=clinician)
    with pytest.raises(ValidationError, match="working on this case"):
        claim_case(case=case, clinician=colleague)

    Case.objects.filter(pk=case.pk).update(claimed_until=timezone.now() - timedelta(seconds=1))
    assert claim_case(case=case, clinician=colleague).claim_holder == colleague

    release_case(case=case, clinician=clinician)  # not theirs any more: nothing happens
    case.refresh_from_db()
    assert case.claim_holder == colleague
    assert release_case(case=case, clinician=colleague).claim_holder is None


# Decisions --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "outcome, action",
    [
        (Outcome.NOT_SUSPECTED, Decision.Action.ISOLATION_ROOM),
        (Outcome.NOT_SUSPECTED, ""),
        (Outcome.SUSPECTED, Decision.Action.STANDARD),
        (Outcome.SUSPECTED, ""),
        (Outcome.RETAKE, Decision.Action.TELEHEALTH),
        (Outcome.PENDING, ""),
    ],
)
def test_inconsistent_outcome_and_action_are_refused_by_the_service_and_the_form(
    client, clinician, appointment, outcome, action
):
    with pytest.raises(ValidationError):
        record_decision(
            case=appointment.case, clinician=clinician, outcome=outcome, action=action, patient_instructions="Reason."
        )
    client.force_login(clinician)
    response = client.post(
        reverse("staff-decide", args=[appointment.case.pk]),
        {"outcome": outcome, "action": action, "patient_instructions": "Reason."},
    )
    assert response.status_code == 400
    assert not Decision.objects.exists()
    appointment.case.refresh_from_db()
    assert appointment.case.outcome == Outcome.PENDING


def test_decision_form_records_the_decision_with_its_patient_instructions(
    client, clinician, appointment, django_capture_on_commit_callbacks, mailoutbox, celery_eager
):
    client.force_login(clinician)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            reverse("staff-decide", args=[appointment.case.pk]),
            {
                "outcome": "suspected",
                "action": "keep_with_ppe",
                "note": "Likely folliculitis but check.",
                "patient_instructions": "Please use entrance B.",
            },
        )

    assert response.status_code == 302
    appointment.case.refresh_from_db()
    decision = appointment.case.decisions.get()
    assert appointment.case.outcome == Outcome.SUSPECTED
    assert (decision.clinician, decision.action, decision.patient_instructions) == (
        clinician,
        "keep_with_ppe",
        "Please use entrance B.",
    )
    assert decision.created_at is not None
    assert [message.to for message in mailoutbox] == [[appointment.patient.email]]
    assert "Please use entrance B." in mailoutbox[0].body and "%" not in mailoutbox[0].body


def test_a_retake_needs_a_reason_and_the_next_upload_puts_the_case_back_in_the_queue(
    clinician, prediction, patient, make_upload
):
    case = prediction.photo.case
    with pytest.raises(ValidationError, match="why a new photo"):
        decide(case, clinician, outcome=Outcome.RETAKE, action="", patient_instructions="  ")

    decide(case, clinician, outcome=Outcome.RETAKE, action="", patient_instructions="The lesion is out of focus.")
    assert list(case_queue(site_ids=None, status="retake")) == [case]
    assert list(case_queue(site_ids=None, status="undecided")) == []

    accept_photo(case=case, uploaded_by=patient, uploaded_file=make_upload(), body_site="hands")

    case.refresh_from_db()
    assert case.outcome == Outcome.PENDING and case.queued_at > case.decisions.get().created_at
    assert list(case_queue(site_ids=None, status="undecided")) == [case]


def test_countersignature_by_a_second_clinician_only(clinician, appointment, make_staff, clinic):
    decision = decide(appointment.case, clinician)
    with pytest.raises(ValidationError, match="second clinician"):
        countersign_decision(decision=decision, clinician=clinician)
    colleague = make_staff("colleague", CLINICIANS_GROUP, clinics=[clinic])

    countersign_decision(decision=decision, clinician=colleague)

    decision.refresh_from_db()
    assert decision.countersigned_by == colleague and decision.countersigned_at is not None
    with pytest.raises(ValidationError, match="Already countersigned"):
        countersign_decision(decision=decision, clinician=make_staff("third", CLINICIANS_GROUP, clinics=[clinic]))


def test_countersign_view(client, clinician, appointment, make_staff, clinic):
    decision = decide(appointment.case, clinician)
    colleague = make_staff("colleague", CLINICIANS_GROUP, clinics=[clinic])
    client.force_login(colleague)

    page = client.get(reverse("staff-case", args=[appointment.case.pk])).content.decode()
    assert "Countersign" in page
    client.post(reverse("staff-countersign", args=[appointment.case.pk, decision.pk]))

    decision.refresh_from_db()
    assert decision.countersigned_by == colleague
    assert (
        "countersigned by colleague" in client.get(reverse("staff-case", args=[appointment.case.pk])).content.decode()
    )


def test_reanalyse_view_queues_with_the_new_box(
    client, clinician, prediction, enqueued, django_capture_on_commit_callbacks
):
    photo = prediction.photo
    client.force_login(clinician)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("staff-reanalyse", args=[photo.case_id, photo.pk]),
            {"roi_x0": 5, "roi_y0": 5, "roi_x1": 105, "roi_y1": 85},
        )

    photo.refresh_from_db()
    assert photo.roi == (5, 5, 105, 85) and photo.roi_source == "clinician"
    assert enqueued[-1] == (photo.pk, clinician.pk)


def test_reanalyse_view_takes_a_tap_and_explains_a_bad_box(
    client, clinician, prediction, enqueued, django_capture_on_commit_callbacks
):
    from ml.boxes import box_from_tap

    photo = prediction.photo
    client.force_login(clinician)
    url = reverse("staff-reanalyse", args=[photo.case_id, photo.pk])

    with django_capture_on_commit_callbacks(execute=True):
        client.post(url, {"tap_x": 30, "tap_y": 40})
    refused = client.post(url, {"roi_x0": -5, "roi_y0": 5, "roi_x1": 105, "roi_y1": 85}, follow=True)

    photo.refresh_from_db()
    assert photo.roi == box_from_tap(30, 40, (photo.width, photo.height)) and photo.roi_source == "clinician"
    assert "lies outside the photo" in refused.content.decode()
    assert photo.roi == box_from_tap(30, 40, (photo.width, photo.height))


# Roles and sites --------------------------------------------------------------------------------


def test_roles_are_groups_with_permissions(make_staff, clinic):
    clinician = make_staff("c", CLINICIANS_GROUP)
    lead = make_staff("l", CLINIC_LEADS_GROUP)
    auditor = make_staff("a", AUDITORS_GROUP)
    patient = make_staff("p", PATIENTS_GROUP)

    assert clinician.has_perm("triage.decide_cases") and not clinician.has_perm("triage.export_decisions")
    assert lead.has_perm("triage.export_decisions")
    assert auditor.has_perm("triage.review_cases") and not auditor.has_perm("triage.decide_cases")
    assert auditor.has_perm("core.view_auditevent") and auditor.has_perm("triage.see_all_sites")
    assert not patient.has_perm("triage.review_cases")


def test_clinicians_see_only_their_sites_cases_and_photos(client, clinician, case_with_photo, other_clinic, make_staff):
    north = case_with_photo(0, probability=0.9, slot=slot_at(other_clinic, timezone.now() + timedelta(hours=5)))
    mine = case_with_photo(6, probability=0.9)
    photo = north.photos.get()
    prediction = photo.predictions.active().get()
    client.force_login(clinician)

    assert list(case_queue(site_ids={mine.clinic_id})) == [mine]
    assert north.appointment.reference not in client.get(reverse("staff-queue")).content.decode()
    for url in [
        reverse("staff-case", args=[north.pk]),
        reverse("photo-image", args=[photo.pk]),
        reverse("prediction-heatmap", args=[photo.pk, prediction.pk]),
    ]:
        assert client.get(url).status_code == 404, url
    assert (
        client.post(
            reverse("staff-decide", args=[north.pk]), {"outcome": "not_suspected", "action": "standard"}
        ).status_code
        == 404
    )
    denied = AuditEvent.objects.get(actor=clinician, action="view_photo", allowed=False)
    assert denied.detail["case_id"] == north.pk and denied.ip_address == "127.0.0.1"

    auditor = make_staff("auditor", AUDITORS_GROUP)
    assert can_view_case(auditor, north) and can_view_case(auditor, mine)


def test_auditor_reads_every_site_but_cannot_decide_or_claim(client, prediction, make_staff):
    auditor = make_staff("auditor", AUDITORS_GROUP)
    case = prediction.photo.case
    client.force_login(auditor)

    page = client.get(reverse("staff-case", args=[case.pk])).content.decode()

    assert "83%" in page and "Record a decision" not in page
    case.refresh_from_db()
    assert case.claim_holder is None
    assert (
        client.post(
            reverse("staff-decide", args=[case.pk]), {"outcome": "not_suspected", "action": "standard"}
        ).status_code
        == 403
    )
    assert client.post(reverse("staff-claim", args=[case.pk])).status_code == 403


def test_a_cancelled_appointments_case_stays_readable_but_cannot_be_decided(client, clinician, prediction):
    case = prediction.photo.case
    cancel_appointment(appointment=case.appointment, actor=None)
    client.force_login(clinician)

    page = client.get(reverse("staff-case", args=[case.pk])).content.decode()

    assert "appointment was cancelled" in page and "Record a decision" not in page
    with pytest.raises(ValidationError, match="cancelled"):
        decide(case, clinician)
    assert case.appointment.reference not in client.get(reverse("staff-queue")).content.decode()


def test_patients_get_403_on_staff_pages(client, patient, prediction):
    client.force_login(patient)
    for url in [
        reverse("staff-queue"),
        reverse("staff-badge"),
        reverse("staff-case", args=[prediction.photo.case_id]),
        reverse("staff-export-decisions"),
        reverse("staff-model-card"),
    ]:
        assert client.get(url).status_code == 403, url


# Export -----------------------------------------------------------------------------------------


def test_clinic_lead_downloads_the_days_decisions_as_csv(
    client, clinician, case_with_photo, make_staff, clinic, other_clinic
):
    case = case_with_photo(5, probability=0.9)
    decide(case, clinician, note='=HYPERLINK("http://evil")', patient_instructions="Entrance B.")
    north = case_with_photo(0, probability=0.9, slot=slot_at(other_clinic, timezone.now() + timedelta(hours=5)))
    decide(north, make_staff("north-clinician", CLINICIANS_GROUP, clinics=[other_clinic]))
    lead = make_staff("lead", CLINIC_LEADS_GROUP, clinics=[clinic])
    client.force_login(lead)
    assert 'name="day"' in client.get(reverse("staff-queue")).content.decode()

    response = client.get(reverse("staff-export-decisions"))

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [row["reference"] for row in rows] == [case.appointment.reference]  # only the lead's site
    assert rows[0]["outcome"] == "Suspected mpox" and rows[0]["clinician"] == "clinician"
    assert rows[0]["note"].startswith("'=")  # never a live spreadsheet formula
    assert rows[0]["patient_instructions"] == "Entrance B."
    assert AuditEvent.objects.filter(actor=lead, action="export_decisions").exists()

    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    assert (
        len(
            list(
                csv.DictReader(
                    io.StringIO(client.get(reverse("staff-export-decisions"), {"day": yesterday}).content.decode())
                )
            )
        )
        == 0
    )
    assert client.get(reverse("staff-export-decisions"), {"day": "31/12/2026"}).status_code == 400

    client.force_login(clinician)
    assert client.get(reverse("staff-export-decisions")).status_code == 403


def test_model_card_page_shows_the_active_models_card(client, clinician, patient, model_version, tmp_path):
    client.force_login(clinician)
    assert "installed without a model card" in client.get(reverse("staff-model-card")).content.decode()

    (tmp_path / "MODEL_CARD.md").write_text("# Model card\nTrained on 227 public web images.", encoding="utf-8")
    model_version.checkpoint_path = str(tmp_path / "model.pt")
    model_version.save()
    page = client.get(reverse("staff-model-card")).content.decode()
    assert "Trained on 227 public web images." in page and model_version.version in page
    assert reverse("staff-model-card") in client.get(reverse("staff-queue")).content.decode()


def test_activating_a_model_version_deactivates_the_others(model_version):
    newer = model_version.__class__.objects.create(
        version="test-model-2", architecture="tiny", checkpoint_path="/nonexistent/2.pt", threshold=0.4
    )

    activate_model_version(newer)

    model_version.refresh_from_db()
    newer.refresh_from_db()
    assert newer.is_active and not model_version.is_active


@pytest.mark.django_db(transaction=True)
def test_a_claim_waits_for_a_concurrent_claim_to_commit_and_is_then_refused(make_staff, clinic, appointment):
    """Clinician A claims inside a transaction that stays open for a moment; clinician B's claim
    meanwhile must wait for A's row lock and then see A's claim (PostgreSQL), not win as well."""
    import threading
    import time

    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("row locks need PostgreSQL (CI's database)")
    first, second = (make_staff(f"racer-{n}", CLINICIANS_GROUP, clinics=[clinic]) for n in range(2))
    first_has_claimed, results = threading.Event(), {}

    def claim_and_hold():
        with transaction.atomic():
            claim_case(case=Case.objects.get(pk=appointment.case.pk), clinician=first)
            first_has_claimed.set()
            time.sleep(1)  # B arrives while A's transaction is still open
        connection.close()

    def claim_meanwhile():
        first_has_claimed.wait()
        try:
            claim_case(case=Case.objects.get(pk=appointment.case.pk), clinician=second)
            results["second"] = "won"
        except ValidationError:
            results["second"] = "refused"
        finally:
            connection.close()

    threads = [threading.Thread(target=claim_and_hold), threading.Thread(target=claim_meanwhile)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert results == {"second": "refused"}
    assert Case.objects.get(pk=appointment.case.pk).claim_holder == first
