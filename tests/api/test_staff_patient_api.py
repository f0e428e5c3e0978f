"""Staff, admin and patient endpoints: the same permission rules as the pages."""
import json

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from triage.models import AuditEvent, Decision, ModelVersion

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
    assert photo["predictions"][0]["heatmap_url"] == reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk])
    assert AuditEvent.objects.filter(action="view_case", object_id=str(case_id), actor=clinician).exists()
    assert session_client(clinician).get(reverse("api-staff-case", args=[999999])).status_code == 404


def test_record_a_decision(session_client, clinician, prediction):
    case = prediction.photo.case
    url = reverse("api-staff-decide", args=[case.pk])
    response = session_client(clinician).post(url, {"outcome": "suspected", "action": "isolation_room", "note": "Bring PPE."}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["clinician"] == "clinician"
    case.refresh_from_db()
    assert case.outcome == "suspected" and Decision.objects.get().note == "Bring PPE."
    pending = session_client(clinician).post(url, {"outcome": "pending", "action": "standard"}, format="json")
    assert pending.status_code == 400 and "outcome" in pending.json()
    assert Decision.objects.count() == 1


def test_model_versions_need_the_model_permissions(session_client, clinician, admin_user, model_version):
    newer = ModelVersion.objects.create(version="test-model-2", architecture="tiny", checkpoint_path="/x.pt", threshold=0.4)
    assert session_client(clinician).get(reverse("api-model-versions")).status_code == 403
    listed = session_client(admin_user).get(reverse("api-model-versions")).json()
    assert [(row["version"], row["status"]) for row in listed["results"]] == [("test-model-2", "retired"), ("test-model-1", "active")]
    promote = reverse("api-model-version-promote", args=[newer.pk])
    assert session_client(clinician).post(promote, {"reason": "better"}, format="json").status_code == 403


def test_promotion_goes_through_the_evidence_rule(session_client, admin_user, model_version):
    """The same service as the admin action: a retired version, or no reason, is refused (and audited)."""
    admin = session_client(admin_user)
    retired = ModelVersion.objects.create(version="test-model-2", architecture="tiny", checkpoint_path="/x.pt", threshold=0.4)
    refused = admin.post(reverse("api-model-version-promote", args=[retired.pk]), {"reason": "looks good"}, format="json")
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
        reverse("api-model-version-promote", args=[challenger.pk]), {"reason": "First model for this clinic."}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["model_version"]["status"] == "active" and body["replaced"] is None and body["promoted_by"] == "admin"
    assert list(ModelVersion.objects.filter(is_active=True)) == [challenger]


def test_patients_see_their_appointments_and_photo_status_never_scores(session_client, patient, other_patient, prediction):
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
