"""The whole FHIR flow with a real FHIR client library (fhirpy) against a live server and a real Celery
worker: search slots, register the patient, book, send the questionnaire answers and a photo, wait for the
RiskAssessment, post the PCR Observation, read the DiagnosticReport. Every resource read is validated
against the FHIR R4 models."""

import base64
import time
from datetime import timedelta

import pytest
from django.utils import timezone
from fhirpy import SyncFHIRClient

import ml.testing
from portal.celery import app as celery_app
from portal.fhir import codes
from registry.versions import register_checkpoints
from tests.api.fhir import answers_resource, assert_valid_fhir, lesion_jpeg
from triage.models import Case, LabResult
from triage.services import record_decision

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(tmp_path, settings, start_worker):
    """A real worker with a tiny model (quick to analyse with), its queue emptied first."""
    settings.MODEL_DIR = tmp_path / "models"
    ml.testing.make_random_checkpoint(settings.MODEL_DIR / "tiny.pt", input_size=64, threshold=0.5, version="tiny-1")
    register_checkpoints()
    celery_app.control.purge()
    return start_worker(settings.CELERY_BROKER_URL)


def valid(resource):
    return assert_valid_fhir(resource.serialize())


def test_a_booking_system_runs_the_whole_visit_through_fhirpy(
    worker, live_server, make_api_key, make_slot, service, clinician
):
    make_slot(24 * 2)
    slot = make_slot(24 * 3)
    _, full_key = make_api_key()
    client = SyncFHIRClient(f"{live_server.url}/fhir", authorization=f"Api-Key {full_key}")

    day = timezone.localdate(slot.starts_at).isoformat()
    slots = (
        client.resources("Slot")
        .search(**{"service-type": f"{codes.SERVICE_SYSTEM}|{service.pk}", "start": day})
        .fetch()
    )
    assert [found.id for found in slots] == [str(slot.pk)]
    valid(slots[0])

    patient = client.resource("Patient", identifier=[{"system": codes.PATIENT_ID_SYSTEM, "value": "EHR-1001"}])
    patient.save()
    appointment = client.resource(
        "Appointment",
        status="booked",
        slot=[{"reference": f"Slot/{slots[0].id}"}],
        identifier=[{"system": codes.APPOINTMENT_ID_SYSTEM, "value": "BK-77"}],
        participant=[{"actor": {"reference": f"Patient/{patient.id}"}, "status": "accepted"}],
        extension=[{"url": codes.CONSENT_CARE_EXTENSION, "valueBoolean": True}],
    )
    appointment.save()
    assert valid(appointment)["status"] == "booked"

    answers = client.resource("QuestionnaireResponse", **answers_resource(appointment.id))
    answers.save()  # PUT QuestionnaireResponse/<appointment id>
    assert (
        valid(client.reference("QuestionnaireResponse", appointment.id).to_resource())["item"][1]["linkId"] == "fever"
    )

    media = client.resource(
        "Media",
        status="completed",
        partOf=[{"reference": f"Appointment/{appointment.id}"}],
        bodySite={"coding": [{"system": codes.BODY_SITE_SYSTEM, "code": "hands"}]},
        content={"contentType": "image/jpeg", "data": base64.b64encode(lesion_jpeg()).decode()},
    )
    media.save()

    assessment = wait_for_final_risk_assessment(client, appointment.id, worker.log_path)
    model_view = assessment["prediction"][0]["qualitativeRisk"]["coding"][0]["code"]
    assert model_view in ("suspected", "not_suspected", "not_assessable")
    assert assessment["basis"] == [{"reference": f"Media/{media.id}"}]
    device = valid(client.reference(reference=assessment["performer"]["reference"]).to_resource())
    assert device["version"][0]["value"] == "tiny-1"

    case = Case.objects.get(appointment_id=appointment.id)
    record_decision(case=case, clinician=clinician, outcome="suspected", action="isolation_room")

    pcr = client.resource(
        "Observation",
        status="final",
        code={"coding": [codes.MPOX_PCR_LOINC]},
        focus=[{"reference": f"Appointment/{appointment.id}"}],
        effectiveDateTime=timezone.localdate().isoformat(),
        valueCodeableConcept={"coding": [codes.DETECTED]},
    )
    pcr.save()
    assert LabResult.objects.get(case=case).result == "positive"

    report = valid(client.reference("DiagnosticReport", appointment.id).to_resource())
    assert report["status"] == "final"
    assert report["media"][0]["link"]["reference"] == f"Media/{media.id}"
    assert report["result"] == [{"reference": f"Observation/{pcr.id}", "display": "Mpox PCR positive"}]
    instructions = {ext["url"]: ext for ext in report["extension"]}[codes.PATIENT_INSTRUCTIONS_EXTENSION]["valueString"]
    assert "separate room" in instructions


def wait_for_final_risk_assessment(client, appointment_id, log_path, timeout=timedelta(seconds=120)):
    deadline = time.monotonic() + timeout.total_seconds()
    while time.monotonic() < deadline:
        assessment = valid(client.reference("RiskAssessment", appointment_id).to_resource())
        if assessment["status"] == "final":
            return assessment
        time.sleep(0.5)
    raise AssertionError(f"No final RiskAssessment in time; worker log:\n{log_path.read_text()[-3000:]}")
