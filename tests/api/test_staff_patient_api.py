"""Staff, admin and patient endpoints: the same permission rules as the pages."""

import json

import pytest
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from rest_framework.test import APIClient

from core.models import AuditEvent
from registry.models import ModelVersion
from triage.models import Decision

pytestmark = pytest.mark.django_db


def test_queue_is_for_clinicians_only(session_client, patient, prediction, api_key):
    assert APIClient().get(reverse("api-staff-queue")).status_code == 403
    assert session_client(patient).get(reverse("api-staff-queue")).status_code == 403
    key_user = APIClient(headers={"Authorization": f"Api-Key {api_key[1]}"})
    assert key_user.get(reverse("api-staff-queue")).status_code == 403  # keys are for the integration API only


def test_queue_lists_cases_with_scores_paginated(session_client, clinician, prediction):
    body = session_client(clinician).get(reverse("api-staff-queue"), {"show": "flagged"}).json()
    assert body["count"] == 1
    row = body["results"][0]
    assert row["id"] == prediction.photo.case_id and row["flagged"] is True
    assert row["max_probability"] == pytest.approx(0.83) and row["photos_analysed"] == 1
    bad = session_client(clinician).get(reverse("api-staff-queue"), {"show": "everything"})
    assert bad.status_code == 400 and "show" in bad.json()


def test_case_detail_has_predictions_and_is_audited(session_client, clinician, prediction):
    case_id = prediction.photo.case_id
    body = session_client(clinician).get(reverse("api-staff-case", args=[case_id])).json()
    (photo,) = body["photos"]
    assert photo["image_url"] == reverse("photo-image", args=[prediction.photo_id])
    assert photo["predictions"][0]["probability"] == pytest.approx(0.83)
    assert photo["predictions"][0]["heatmap_url"] == reverse(
        "prediction-heatmap", args=[prediction.photo_id, prediction.pk]
    )
    assert AuditEvent.objects.filter(action="view_case", object_id=str(case_id), actor=clinician).exists()
    assert session_client(clinician).get(reverse("api-staff-case", args=[999999])).status_code == 404


def test_record_a_decision(session_client, clinician, prediction):
    case = prediction.photo.case
    url = reverse("api-staff-decide", args=[case.pk])
    response = session_client(clinician).post(
        url, {"outcome": "suspected", "action": "isolation_room", "note": "Bring PPE."}, format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["clinician"] == "clinician"
    case.refresh_from_db()
    assert case.outcome == "suspected" and Decision.objects.get().note == "Bring PPE."
    pending = session_client(clinician).post(url, {"outcome": "pending", "action": "standard"}, format="json")
    assert pending.status_code == 400 and "outcome" in pending.json()
    assert Decision.objects.count() == 1


def test_lab_result_and_diagnosis_are_recorded_and_corrected_with_history(session_client, clinician, appointment):
    """The same service as the staff page: a correction adds a row (the old one stays) and needs a note."""
    case = appointment.case
    staff = session_client(clinician)
    url = reverse("api-staff-lab-result", args=[case.pk])
    assert staff.get(url).json() == {"lab_results": [], "final_diagnoses": []}
    assert AuditEvent.objects.filter(action="view_ground_truth", object_id=str(case.pk), actor=clinician).exists()

    first = staff.post(url, {"result": "positive", "result_date": "2026-03-02", "diagnosis": "mpox"}, format="json")
    assert first.status_code == 201, first.content
    (lab,) = first.json()["lab_results"]
    assert (lab["result"], lab["result_date"], lab["entered_by"]) == ("positive", "2026-03-02", "clinician")
    assert [row["diagnosis"] for row in first.json()["final_diagnoses"]] == ["mpox"]

    refusals = {
        "a correction without a reason": {"result": "negative", "result_date": "2026-03-04"},
        "no date for a positive or negative result": {"result": "negative", "note": "Lab re-ran it."},
        "nothing given": {"note": "?"},
        "what is already recorded": {"diagnosis": "mpox"},
        "an unknown result": {"result": "maybe"},
    }
    answers = {what: staff.post(url, body, format="json") for what, body in refusals.items()}
    assert {what: answer.status_code for what, answer in answers.items()} == dict.fromkeys(refusals, 400)
    assert "why you are correcting" in str(answers["a correction without a reason"].json())
    assert "date" in str(answers["no date for a positive or negative result"].json())
    assert "Choose a lab result, a final diagnosis, or both." in str(answers["nothing given"].json())
    assert "Nothing changed" in str(answers["what is already recorded"].json())
    assert "result" in answers["an unknown result"].json()

    correction = {"result": "negative", "result_date": "2026-03-04", "note": "Lab re-ran it."}
    unconfirmed = staff.post(url, correction, format="json")  # a negative PCR against the diagnosis of mpox
    assert unconfirmed.status_code == 400 and "contradict each other" in str(unconfirmed.json())
    corrected = staff.post(url, {**correction, "confirm_contradiction": True}, format="json")
    assert corrected.status_code == 201, corrected.content
    history = staff.get(url).json()["lab_results"]
    assert [(row["result"], row["note"]) for row in history] == [("negative", "Lab re-ran it."), ("positive", "")]
    assert AuditEvent.objects.filter(action="record_lab_result", actor=clinician).count() == 2


def test_lab_results_follow_the_case_pages_permissions(session_client, make_staff, other_clinic, patient, appointment):
    url = reverse("api-staff-lab-result", args=[appointment.case.pk])
    body = {"result": "not_tested"}
    elsewhere = session_client(make_staff("elsewhere", "clinicians", clinics=[other_clinic]))
    assert elsewhere.get(url).status_code == 404 and elsewhere.post(url, body, format="json").status_code == 404
    auditor = session_client(make_staff("auditor", "auditors"))
    assert auditor.post(url, body, format="json").status_code == 403  # reads every site, records nothing
    assert session_client(patient).get(url).status_code == 403
    assert not appointment.case.lab_results.exists()


def test_model_versions_need_the_model_permissions(session_client, clinician, admin_user, model_version):
    newer = ModelVersion.objects.create(
        version="test-model-2", architecture="tiny", checkpoint_path="/x.pt", threshold=0.4
    )
    assert session_client(clinician).get(reverse("api-model-versions")).status_code == 403
    listed = session_client(admin_user).get(reverse("api-model-versions")).json()
    assert [(row["version"], row["status"]) for row in listed["results"]] == [
        ("test-model-2", "retired"),
        ("test-model-1", "active"),
    ]
    promote = reverse("api-model-version-promote", args=[newer.pk])
    assert session_client(clinician).post(promote, {"reason": "better"}, format="json").status_code == 403


def test_promotion_goes_through_the_evidence_rule(session_client, admin_user, model_version):
    """The same service as the admin action: a retired version, or no reason, is refused (and audited)."""
    admin = session_client(admin_user)
    retired = ModelVersion.objects.create(
        version="test-model-2", architecture="tiny", checkpoint_path="/x.pt", threshold=0.4
    )
    refused = admin.post(
        reverse("api-model-version-promote", args=[retired.pk]), {"reason": "looks good"}, format="json"
    )
    assert refused.status_code == 400 and "not the challenger" in str(refused.json())
    assert AuditEvent.objects.filter(action="promote_model", allowed=False, actor=admin_user).exists()
    no_reason = admin.post(reverse("api-model-version-promote", args=[retired.pk]), {"reason": ""}, format="json")
    assert no_reason.status_code == 400 and "reason" in no_reason.json()
    assert list(ModelVersion.objects.filter(is_active=True)) == [model_version]


def test_the_challenger_is_promoted_when_no_model_is_active(session_client, admin_user, db):
    challenger = ModelVersion.objects.create(
        version="first-model", architecture="tiny", checkpoint_path="/x.pt", threshold=0.4, is_challenger=True
    )
    response = session_client(admin_user).post(
        reverse("api-model-version-promote", args=[challenger.pk]),
        {"reason": "First model for this clinic."},
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model_version"]["status"] == "active" and body["replaced"] is None and body["promoted_by"] == "admin"
    assert list(ModelVersion.objects.filter(is_active=True)) == [challenger]


def test_patients_see_their_appointments_and_photo_status_never_scores(
    session_client, patient, other_patient, prediction
):
    appointment = prediction.photo.case.appointment
    own = session_client(patient)
    listing = own.get(reverse("api-my-appointments")).json()
    assert listing["count"] == 1
    (row,) = listing["results"]
    assert row["reference"] == appointment.reference and row["photos"][0]["status"] == "analysed"
    photos = own.get(reverse("api-my-appointment-photos", args=[appointment.reference])).json()
    assert photos["count"] == 1
    text = json.dumps([listing, photos, own.get(reverse("api-my-appointment", args=[appointment.reference])).json()])
    assert "probability" not in text and "0.83" not in text and "flagged" not in text and "outcome" not in text
    other = session_client(other_patient)
    assert other.get(reverse("api-my-appointment", args=[appointment.reference])).status_code == 404
    assert other.get(reverse("api-my-appointment-photos", args=[appointment.reference])).status_code == 404
    assert other.get(reverse("api-my-appointments")).json()["count"] == 0


def test_patients_cannot_upload_through_the_api(session_client, patient, appointment, make_upload):
    url = reverse("api-my-appointment-photos", args=[appointment.reference])
    response = session_client(patient).post(url, {"photo": make_upload(), "body_site": "hands"}, format="multipart")
    assert response.status_code == 405


def test_a_malformed_api_url_is_a_json_404(session_client, clinician):
    response = session_client(clinician).get("/api/v1/staff/cases/not-a-number/")
    assert response.status_code == 404 and response.json() == {"detail": "Not found."}
    page = session_client(clinician).get("/no-such-page/")
    assert page.status_code == 404 and page["Content-Type"].startswith("text/html")


def test_patients_cancel_their_own_appointment_once(session_client, patient, other_patient, appointment, make_slot):
    url = reverse("api-my-appointment-cancel", args=[appointment.reference])
    assert session_client(other_patient).post(url).status_code == 404
    own = session_client(patient)
    first = own.post(url)
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    assert own.post(url).json() == first.json()  # a retry changes nothing
    appointment.case.refresh_from_db()
    assert not appointment.case.is_open


def test_patients_cannot_cancel_after_the_cut_off(session_client, patient, make_slot):
    from portal.booking.services import book_appointment

    soon = book_appointment(patient=patient, slot=make_slot(1), consent_care=True)
    response = session_client(patient).post(reverse("api-my-appointment-cancel", args=[soon.reference]))
    assert response.status_code == 400 and "call the clinic" in str(response.json())
    soon.refresh_from_db()
    assert soon.status == "booked" and soon.case.is_open


def test_patients_move_their_appointment_to_a_listed_free_time(
    session_client, patient, other_patient, appointment, make_slot
):
    from portal.booking.models import Service, Slot

    later = make_slot(48)
    Slot.objects.create(
        clinic=later.clinic, service=Service.objects.create(name="Vaccination"), starts_at=later.starts_at
    )
    own = session_client(patient)
    slots = own.get(reverse("api-my-appointment-slots", args=[appointment.reference])).json()
    assert [row["id"] for row in slots["results"]] == [later.pk]  # its own slot is taken, the other is another service
    assert (
        session_client(other_patient).get(reverse("api-my-appointment-slots", args=[appointment.reference])).status_code
        == 404
    )

    url = reverse("api-my-appointment-reschedule", args=[appointment.reference])
    assert session_client(other_patient).post(url, {"slot": later.pk}, format="json").status_code == 404
    moved = own.post(url, {"slot": later.pk}, format="json")
    assert moved.status_code == 200, moved.content
    assert parse_datetime(moved.json()["starts_at"]) == later.starts_at
    appointment.refresh_from_db()
    assert appointment.slot == later
    missing = own.post(url, {"slot": 999999}, format="json")
    assert missing.status_code == 400 and "slot" in missing.json()
