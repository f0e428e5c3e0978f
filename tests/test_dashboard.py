from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from portal.booking.services import book_appointment, cancel_appointment
from triage.models import AuditEvent, Case, Decision, Outcome, Photo
from triage.registry import activate_model_version
from triage.selectors import case_queue
from triage.services import accept_photo, record_decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def case_with_photo(make_slot, other_patient, private_storage, enqueued, make_upload, record_result):
    """case_with_photo(hours_from_now, probability=None) -> Case with one photo, analysed when a
    probability is given (flagged at 0.5 or more)."""

    def make(hours_from_now, probability=None, reason=""):
        appointment = book_appointment(patient=other_patient, slot=make_slot(hours_from_now), consent_care=True)
        photo = accept_photo(
            case=appointment.case, uploaded_by=other_patient, uploaded_file=make_upload(), body_site=Photo.BodySite.TRUNK
        )
        if probability is not None:
            record_result(photo, probability, reason)
        return appointment.case

    return make


def test_queue_puts_flagged_undecided_first_then_score_then_time(case_with_photo, clinician):
    soon_unscored = case_with_photo(2)
    later_low = case_with_photo(30, probability=0.2)
    flagged = case_with_photo(50, probability=0.9)
    flagged_decided = case_with_photo(3, probability=0.95)
    record_decision(case=flagged_decided, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.TELEHEALTH)
    cancel_appointment(appointment=case_with_photo(5).appointment)  # cancellable: before the cut-off

    assert list(case_queue()) == [flagged, flagged_decided, later_low, soon_unscored]
    assert list(case_queue(queue_filter="flagged")) == [flagged, flagged_decided]
    assert list(case_queue(queue_filter="undecided")) == [flagged, later_low, soon_unscored]


def test_queue_shows_each_photos_outcome_and_not_assessable_photos_never_flag(case_with_photo, clinician, client):
    judged_out = case_with_photo(4, probability=0.97, reason="no_lesion")
    suspected = case_with_photo(5, probability=0.7)
    assert list(case_queue(queue_filter="flagged")) == [suspected]
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
    assert not case_queue().exists()


def test_queue_page_lists_cases(client, clinician, prediction):
    client.force_login(clinician)

    page = client.get(reverse("staff-queue"), {"show": "flagged"}).content.decode()

    assert prediction.photo.case.appointment.reference in page
    assert prediction.photo.case.appointment.patient.email in page  # who the case is
    assert "83%" in page


def test_case_page_shows_prediction_box_and_history_and_is_audited(client, clinician, prediction, model_version):
    older_time = timezone.now() - timedelta(days=1)
    prediction.__class__.objects.filter(pk=prediction.pk).update(created_at=older_time)
    newer = prediction.__class__.objects.create(
        photo=prediction.photo, model_version=model_version, probability=0.41, threshold=0.5, flagged=False,
        roi_source="clinician", roi_x0=0, roi_y0=0, roi_x1=100, roi_y1=60, heatmap=prediction.heatmap.name,
    )
    case = prediction.photo.case
    client.force_login(clinician)

    page = client.get(reverse("staff-case", args=[case.pk])).content.decode()

    assert "41%" in page and "83%" in page  # latest, then history
    assert "left:0.00%;top:0.00%;width:50.00%;height:50.00%" in page
    assert reverse("prediction-heatmap", args=[prediction.photo_id, newer.pk]) in page
    assert "not a diagnosis" in page
    assert AuditEvent.objects.filter(actor=clinician, action="view_case", object_id=str(case.pk)).exists()


def test_decision_form_records_the_decision(client, clinician, appointment):
    client.force_login(clinician)

    response = client.post(
        reverse("staff-decide", args=[appointment.case.pk]),
        {"outcome": "not_suspected", "action": "standard", "note": "Folliculitis."},
    )

    assert response.status_code == 302
    appointment.case.refresh_from_db()
    assert appointment.case.outcome == Outcome.NOT_SUSPECTED
    assert appointment.case.decisions.get().note == "Folliculitis."


def test_reanalyse_view_queues_with_the_new_box(client, clinician, prediction, enqueued, django_capture_on_commit_callbacks):
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


def test_reanalyse_view_takes_a_tap_and_explains_a_bad_box(client, clinician, prediction, enqueued,
                                                           django_capture_on_commit_callbacks):
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


def test_activating_a_model_version_deactivates_the_others(model_version):
    newer = model_version.__class__.objects.create(
        version="test-model-2", architecture="tiny", checkpoint_path="/nonexistent/2.pt", threshold=0.4
    )

    activate_model_version(newer)

    model_version.refresh_from_db()
    newer.refresh_from_db()
    assert newer.is_active and not model_version.is_active


def test_recording_a_decision_updates_the_case(clinician, appointment):
    decision = record_decision(
        case=appointment.case, clinician=clinician, outcome=Outcome.SUSPECTED,
        action=Decision.Action.ISOLATION_ROOM, note="Vesicles, fever.",
    )

    appointment.case.refresh_from_db()
    assert appointment.case.outcome == Outcome.SUSPECTED
    assert decision.clinician == clinician




def test_model_card_page_shows_the_active_models_card(client, clinician, patient, model_version, tmp_path):
    client.force_login(clinician)
    assert "installed without a model card" in client.get(reverse("staff-model-card")).content.decode()

    (tmp_path / "MODEL_CARD.md").write_text("# Model card\nTrained on 227 public web images.", encoding="utf-8")
    model_version.checkpoint_path = str(tmp_path / "model.pt")
    model_version.save()
    page = client.get(reverse("staff-model-card")).content.decode()
    assert "Trained on 227 public web images." in page and model_version.version in page
    assert reverse("staff-model-card") in client.get(reverse("staff-queue")).content.decode()

    client.force_login(patient)
    assert client.get(reverse("staff-model-card")).status_code == 403
