"""Lab results and final diagnoses: attributed, audited, corrections add rows and need a reason."""

from datetime import date, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from triage.models import FinalDiagnosis, LabResult
from triage.services import record_ground_truth

pytestmark = pytest.mark.django_db


def test_first_entry_then_a_correction_keeps_the_history(appointment, clinician, admin_user):
    case = appointment.case
    (lab,) = record_ground_truth(
        case=case, entered_by=clinician, result=LabResult.Result.POSITIVE, result_date=date(2026, 11, 20)
    )
    assert (lab.entered_by, lab.result_date) == (clinician, date(2026, 11, 20))

    with pytest.raises(ValidationError, match="say why"):
        record_ground_truth(
            case=case, entered_by=admin_user, result=LabResult.Result.NEGATIVE, result_date=date(2026, 11, 21)
        )
    record_ground_truth(
        case=case,
        entered_by=admin_user,
        result=LabResult.Result.NEGATIVE,
        result_date=date(2026, 11, 21),
        diagnosis=FinalDiagnosis.Diagnosis.HERPES,
        note="Repeat PCR negative; HSV-2 positive.",
    )

    assert [row.result for row in case.lab_results.all()] == ["negative", "positive"]  # newest (current) first
    assert case.lab_results.first().entered_by == admin_user
    assert case.final_diagnoses.get().diagnosis == "herpes"
    events = AuditEvent.objects.filter(
        object_id=str(case.pk), action__in=["record_lab_result", "record_final_diagnosis"]
    )
    assert sorted((e.action, e.actor.username, e.detail.get("corrects")) for e in events) == [
        ("record_final_diagnosis", "admin", None),
        ("record_lab_result", "admin", "positive"),
        ("record_lab_result", "clinician", None),
    ]


def test_unchanged_values_missing_and_future_dates_are_refused(appointment, clinician):
    case = appointment.case
    with pytest.raises(ValidationError, match="date of the lab result"):
        record_ground_truth(case=case, entered_by=clinician, result=LabResult.Result.NEGATIVE)
    with pytest.raises(ValidationError, match="in the future"):
        record_ground_truth(
            case=case,
            entered_by=clinician,
            result=LabResult.Result.NEGATIVE,
            result_date=timezone.localdate() + timedelta(days=1),
        )
    record_ground_truth(case=case, entered_by=clinician, result=LabResult.Result.NOT_TESTED)
    with pytest.raises(ValidationError, match="Nothing changed"):
        record_ground_truth(case=case, entered_by=clinician, result=LabResult.Result.NOT_TESTED)
    assert case.lab_results.count() == 1


def test_staff_form_records_and_shows_the_history(appointment, clinician, client):
    client.force_login(clinician)
    url = reverse("staff-lab-result", args=[appointment.case.pk])
    page = client.get(url)
    assert page.status_code == 200 and b"Not recorded" in page.content

    response = client.post(url, {"result": "positive", "result_date": "2026-11-20", "diagnosis": "mpox"})
    assert response.status_code == 302
    response = client.post(url, {"result": "negative", "result_date": "2026-11-22"})
    assert response.status_code == 400 and b"Please say why you are correcting" in response.content
    corrected = {"result": "negative", "result_date": "2026-11-22", "note": "Lab amended the report."}
    response = client.post(url, corrected)  # negative PCR against the recorded diagnosis of mpox: asked first
    assert response.status_code == 400 and b"contradict each other" in response.content
    response = client.post(url, {**corrected, "confirm_contradiction": "on"}, follow=True)
    page = response.content.decode()
    assert "Mpox PCR negative" in page and "All entries and corrections" in page and "Lab amended the report." in page
    assert appointment.case.lab_results.count() == 2


def test_empty_form_is_explained(appointment, clinician, client):
    client.force_login(clinician)
    response = client.post(reverse("staff-lab-result", args=[appointment.case.pk]), {})
    assert response.status_code == 400
    assert b"Choose a lab result, a final diagnosis, or both." in response.content


def test_patients_cannot_reach_the_form(appointment, patient, client):
    client.force_login(patient)
    assert client.get(reverse("staff-lab-result", args=[appointment.case.pk])).status_code == 403
    assert (
        client.post(reverse("staff-lab-result", args=[appointment.case.pk]), {"result": "positive"}).status_code == 403
    )
    assert not LabResult.objects.exists()
