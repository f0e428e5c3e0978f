"""Helpers for the FHIR tests: a test client that checks every answer is a valid FHIR R4 resource
(fhir.resources models) before a test looks at it, and the resources a booking system sends."""

import base64
import io

from fhir.resources.R4B import get_fhir_model_class
from PIL import Image, ImageDraw
from rest_framework.test import APIClient

from portal.fhir import codes

FHIR_JSON = "application/fhir+json"


def assert_valid_fhir(data):
    """`data` validates against the FHIR model of its resourceType; so does every resource in a Bundle."""
    model = get_fhir_model_class(data["resourceType"])
    model.model_validate(data)
    for entry in data.get("entry", []):
        assert_valid_fhir(entry["resource"])
    return data


class FhirClient:
    """Django's test client speaking FHIR JSON with one clinic's key; every answer is validated."""

    def __init__(self, full_key=None):
        self.client = APIClient()
        if full_key:
            self.client.credentials(HTTP_AUTHORIZATION=f"Api-Key {full_key}")

    def _check(self, response):
        assert response["Content-Type"].startswith(FHIR_JSON), response.content[:300]
        response.fhir = assert_valid_fhir(response.json())
        return response

    def get(self, path, params=None, **headers):
        return self._check(self.client.get(f"/fhir/{path}", params or {}, headers=headers))

    def post(self, path, resource, **headers):
        return self._check(self.client.post(f"/fhir/{path}", resource, format="json", headers=headers))

    def put(self, path, resource, **headers):
        return self._check(self.client.put(f"/fhir/{path}", resource, format="json", headers=headers))

    def raw(self, method, path, **kwargs):
        return getattr(self.client, method)(f"/fhir/{path}", **kwargs)


def patient_resource(external_id="P-1"):
    return {
        "resourceType": "Patient",
        "identifier": [{"system": codes.PATIENT_ID_SYSTEM, "value": external_id}],
        "telecom": [{"system": "email", "value": "pat@example.org"}],
    }


def appointment_resource(slot_id, patient_id, external_id="A-1", consent_care=True):
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "identifier": [{"system": codes.APPOINTMENT_ID_SYSTEM, "value": external_id}],
        "slot": [{"reference": f"Slot/{slot_id}"}],
        "participant": [{"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"}],
        "extension": [{"url": codes.CONSENT_CARE_EXTENSION, "valueBoolean": consent_care}],
    }


def answers_resource(appointment_id):
    def coding(key, code):
        return {"valueCoding": {"system": codes.answer_system(key), "code": code}}

    return {
        "resourceType": "QuestionnaireResponse",
        "id": str(appointment_id),
        "status": "completed",
        "questionnaire": f"{codes.QUESTIONNAIRE_URL}|1",
        "item": [
            {"linkId": "onset_date", "answer": [{"valueDate": "2026-11-28"}]},
            {"linkId": "fever", "answer": [coding("fever", "yes")]},
            {"linkId": "swollen_lymph_nodes", "answer": [coding("swollen_lymph_nodes", "no")]},
            {"linkId": "lesion_sites", "answer": [coding("lesion_sites", "genital"), coding("lesion_sites", "hands")]},
            {"linkId": "lesion_count", "answer": [coding("lesion_count", "2_5")]},
            {"linkId": "pain_itch", "answer": [coding("pain_itch", "pain")]},
            {"linkId": "close_contact", "answer": [coding("close_contact", "yes")]},
            {"linkId": "travel", "answer": [coding("travel", "no")]},
            {"linkId": "vaccination", "answer": [coding("vaccination", "none")]},
            {"linkId": "notes", "answer": [{"valueString": "Sore on the hand since last week."}]},
        ],
    }


def lesion_jpeg(size=(320, 240)):
    image = Image.new("RGB", size, (214, 170, 140))
    ImageDraw.Draw(image).ellipse((100, 70, 200, 170), fill=(140, 60, 60))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def media_resource(appointment_id, data=None, body_site="hands"):
    return {
        "resourceType": "Media",
        "status": "completed",
        "partOf": [{"reference": f"Appointment/{appointment_id}"}],
        "bodySite": {"coding": [{"system": codes.BODY_SITE_SYSTEM, "code": body_site}]},
        "content": {"contentType": "image/jpeg", "data": base64.b64encode(data or lesion_jpeg()).decode()},
    }


def pcr_observation(appointment_id, detected=True, status="final", note=None, day="2026-12-01"):
    observation = {
        "resourceType": "Observation",
        "status": status,
        "code": {"coding": [codes.MPOX_PCR_LOINC]},
        "focus": [{"reference": f"Appointment/{appointment_id}"}],
        "effectiveDateTime": day,
        "valueCodeableConcept": {"coding": [codes.DETECTED if detected else codes.NOT_DETECTED]},
    }
    if note:
        observation["note"] = [{"text": note}]
    return observation
