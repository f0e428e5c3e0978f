"""The FHIR R4 interface through Django's test client: every answer validates against the fhir.resources
R4 models (FhirClient checks it), errors are OperationOutcomes, and each write goes through the portal's
own services (booking rules, uploads, lab-result corrections), scoped to the key's clinic."""

import base64
import io

import pytest
from django.utils import timezone
from PIL import Image

from core.models import AuditEvent
from portal.booking.models import Appointment, Service, Slot
from portal.fhir import codes
from portal.fhir.resources import risk_assessment_resource
from portal.integrations.delivery import attempt_delivery
from portal.integrations.models import WebhookDelivery, WebhookEndpoint
from portal.integrations.signing import verify
from tests.api.fhir import (
    FHIR_JSON,
    FhirClient,
    answers_resource,
    appointment_resource,
    assert_valid_fhir,
    media_resource,
    patient_resource,
    pcr_observation,
)
from triage.analysis import read_photo
from triage.api import UploadRateThrottle
from triage.models import LabResult, Photo
from triage.services import record_decision

pytestmark = pytest.mark.django_db


@pytest.fixture
def fhir(api_key):
    return FhirClient(api_key[1])


@pytest.fixture
def other_fhir(make_api_key, other_clinic):
    """A client with a key of another clinic."""
    return FhirClient(make_api_key(other_clinic)[1])


@pytest.fixture
def booked(fhir, slot):
    """Patient P-1 and appointment A-1 (at `slot`) made through FHIR: (patient id, appointment id)."""
    patient = fhir.post("Patient", patient_resource())
    assert patient.status_code == 201, patient.fhir
    appointment = fhir.post("Appointment", appointment_resource(slot.pk, patient.fhir["id"]))
    assert appointment.status_code == 201, appointment.fhir
    return patient.fhir["id"], appointment.fhir["id"]


@pytest.fixture
def upload(fhir, booked, private_storage, enqueued):
    """upload() -> the Photo made by POSTing a Media for the booked appointment."""

    def post():
        assert fhir.post("Media", media_resource(booked[1])).status_code == 201
        return Photo.objects.latest("pk")

    return post


def issue(response):
    assert response.fhir["resourceType"] == "OperationOutcome"
    return response.fhir["issue"][0]


# --- capability and errors ----------------------------------------------------------------------


def test_metadata_states_each_supported_interaction_without_a_key(db):
    response = FhirClient().get("metadata")
    assert response.status_code == 200
    statement = response.fhir
    assert statement["resourceType"] == "CapabilityStatement" and statement["fhirVersion"] == "4.0.1"
    supported = {
        resource["type"]: {i["code"] for i in resource["interaction"]} for resource in statement["rest"][0]["resource"]
    }
    assert supported["Appointment"] == {"read", "create", "update", "search-type"}
    assert supported["Slot"] == {"read", "search-type"}
    assert supported["Observation"] == {"read", "create"}
    assert supported["Binary"] == {"read"}
    slot_params = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Slot")["searchParam"]
    assert {param["name"] for param in slot_params} == {"service-type", "start", "status"}


@pytest.mark.parametrize("headers, status", [({}, 401), ({"HTTP_AUTHORIZATION": "Api-Key nope.nope"}, 401)])
def test_no_or_a_wrong_key_is_a_401_operation_outcome(db, headers, status):
    client = FhirClient()
    client.client.credentials(**headers)
    response = client.get("Patient")
    assert response.status_code == status
    assert issue(response)["code"] == "login"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_an_address_that_keeps_sending_wrong_keys_is_throttled_with_an_operation_outcome(db, settings):
    settings.API_KEY_FAILURE_LIMIT = 2
    client = FhirClient("nope.nope")
    assert [client.get("Patient").status_code for _ in range(2)] == [401, 401]
    throttled = client.get("Patient")
    assert (
        throttled.status_code == 429 and issue(throttled)["code"] == "throttled" and int(throttled["Retry-After"]) > 0
    )


def test_errors_are_operation_outcomes_with_a_readable_issue(fhir):
    cases = [
        (fhir.get("Encounter"), 404, "not-found"),
        (fhir.get("nothing/here/at/all"), 404, "not-found"),
        (fhir.get("Patient", {"name": "x"}), 400, "not-supported"),
        (fhir.get("Slot", {"start": "tomorrow"}), 400, "invalid"),
        (fhir.get("Patient/999999"), 404, "not-found"),
        (fhir.get("Patient/not-a-number"), 404, "not-found"),
        (fhir.post("Slot", {"resourceType": "Slot"}), 405, "not-supported"),
        (fhir.post("Patient", {"resourceType": "Patient", "identifier": "not a list"}), 400, "invalid"),
        (fhir.post("Patient", {"resourceType": "Observation"}), 400, "invalid"),
        (fhir.post("Patient", {"resourceType": "Patient"}), 400, "invalid"),
        (fhir.put("Patient/1", {"resourceType": "Patient"}), 405, "not-supported"),
    ]
    for response, status, code in cases:
        assert (response.status_code, issue(response)["code"]) == (status, code), response.fhir
        assert issue(response)["diagnostics"]
    malformed = fhir._check(fhir.raw("post", "Patient", data="{not json", content_type=FHIR_JSON))
    assert malformed.status_code == 400 and issue(malformed)["code"] == "structure"
    form = fhir._check(fhir.raw("post", "Patient", data={"a": "b"}))
    assert form.status_code == 415 and issue(form)["code"] == "not-supported"
    deleted = fhir._check(fhir.raw("delete", "Patient/1"))
    assert deleted.status_code == 405


# --- scheduling ---------------------------------------------------------------------------------


def test_slot_search_by_service_and_date_lists_free_slots_only(fhir, clinic, service, make_slot, other_clinic):
    tomorrow, later = make_slot(24), make_slot(24 * 3)
    other_service = Service.objects.create(name="Other", duration_minutes=30)
    Slot.objects.create(clinic=clinic, service=other_service, starts_at=tomorrow.starts_at)
    Slot.objects.create(clinic=other_clinic, service=service, starts_at=tomorrow.starts_at)
    day = timezone.localdate(tomorrow.starts_at).isoformat()

    found = fhir.get(
        "Slot", {"service-type": f"{codes.SERVICE_SYSTEM}|{service.pk}", "start": day, "status": "free"}
    ).fhir
    assert [entry["resource"]["id"] for entry in found["entry"]] == [str(tomorrow.pk)]
    assert found["entry"][0]["resource"]["status"] == "free"
    assert found["entry"][0]["resource"]["serviceType"][0]["coding"][0]["code"] == str(service.pk)
    ranged = fhir.get("Slot", {"service-type": str(service.pk), "start": [f"gt{day}"]}).fhir
    assert [entry["resource"]["id"] for entry in ranged["entry"]] == [str(later.pk)]
    assert fhir.get("Slot").fhir["total"] == 3  # this clinic's free slots, any service


def test_patient_create_is_conditional_on_the_booking_system_id(fhir):
    first = fhir.post("Patient", patient_resource("P-9"))
    again = fhir.post("Patient", patient_resource("P-9"))
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.fhir["id"] == again.fhir["id"] and first["Location"].endswith(f"/fhir/Patient/{first.fhir['id']}")
    found = fhir.get("Patient", {"identifier": f"{codes.PATIENT_ID_SYSTEM}|P-9"}).fhir
    assert found["total"] == 1 and found["entry"][0]["resource"]["identifier"][0]["value"] == "P-9"
    assert fhir.get(f"Patient/{first.fhir['id']}").fhir["telecom"][0]["value"] == "pat@example.org"


def test_booking_rules_hold_as_on_the_pages(fhir, booked, slot, make_slot):
    patient_id, appointment_id = booked
    appointment = fhir.get(f"Appointment/{appointment_id}").fhir
    assert appointment["status"] == "booked" and appointment["slot"] == [{"reference": f"Slot/{slot.pk}"}]
    assert {identifier["system"] for identifier in appointment["identifier"]} == {
        codes.APPOINTMENT_ID_SYSTEM,
        codes.BOOKING_REFERENCE_SYSTEM,
    }

    taken = fhir.post("Appointment", appointment_resource(slot.pk, patient_id, external_id="A-2"))
    assert taken.status_code == 422 and "taken" in issue(taken)["diagnostics"]
    no_consent = fhir.post("Appointment", appointment_resource(make_slot(48).pk, patient_id, "A-3", consent_care=False))
    assert no_consent.status_code == 422 and "consent" in issue(no_consent)["diagnostics"]
    same_id = fhir.post("Appointment", appointment_resource(make_slot(50).pk, patient_id, external_id="A-1"))
    assert same_id.status_code == 422 and "already exists" in issue(same_id)["diagnostics"]
    assert Appointment.objects.count() == 1


def test_an_appointment_is_moved_and_cancelled_by_put(fhir, booked, make_slot):
    patient_id, appointment_id = booked
    later = make_slot(72)
    appointment = fhir.get(f"Appointment/{appointment_id}").fhir
    moved = fhir.put(f"Appointment/{appointment_id}", {**appointment, "slot": [{"reference": f"Slot/{later.pk}"}]})
    assert moved.status_code == 200 and moved.fhir["slot"] == [{"reference": f"Slot/{later.pk}"}]
    cancelled = fhir.put(f"Appointment/{appointment_id}", {**moved.fhir, "status": "cancelled"})
    assert cancelled.status_code == 200 and cancelled.fhir["status"] == "cancelled"
    assert Appointment.objects.get(pk=appointment_id).status == "cancelled"
    again = fhir.put(f"Appointment/{appointment_id}", {**moved.fhir, "status": "booked"})
    assert again.status_code == 422
    found = fhir.get("Appointment", {"patient": f"Patient/{patient_id}", "status": "cancelled"}).fhir
    assert [entry["resource"]["id"] for entry in found["entry"]] == [appointment_id]
    assert fhir.get("Appointment", {"status": "booked"}).fhir["total"] == 0


def test_appointments_are_found_by_the_booking_system_id_and_by_date(fhir, booked, slot):
    _, appointment_id = booked
    by_id = fhir.get("Appointment", {"identifier": f"{codes.APPOINTMENT_ID_SYSTEM}|A-1"}).fhir
    assert [entry["resource"]["id"] for entry in by_id["entry"]] == [appointment_id]
    day = timezone.localdate(slot.starts_at)
    assert fhir.get("Appointment", {"date": day.isoformat()}).fhir["total"] == 1
    assert fhir.get("Appointment", {"date": f"lt{day.isoformat()}"}).fhir["total"] == 0
    assert fhir.get("Appointment", {"identifier": "A-2"}).fhir["total"] == 0
    wrong_system = fhir.get("Appointment", {"identifier": "urn:other|A-1"})
    assert wrong_system.status_code == 400 and codes.APPOINTMENT_ID_SYSTEM in issue(wrong_system)["diagnostics"]


def test_changes_after_the_cut_off_are_refused(fhir, make_slot, settings):
    settings.BOOKING_CHANGE_CUTOFF_HOURS = 48
    patient = fhir.post("Patient", patient_resource()).fhir
    appointment = fhir.post("Appointment", appointment_resource(make_slot(24).pk, patient["id"])).fhir
    refused = fhir.put(f"Appointment/{appointment['id']}", {**appointment, "status": "cancelled"})
    assert refused.status_code == 422 and "48 hours" in issue(refused)["diagnostics"]


def test_a_retried_create_with_the_same_idempotency_key_makes_nothing_new(fhir, slot):
    patient = fhir.post("Patient", patient_resource()).fhir
    body = appointment_resource(slot.pk, patient["id"])
    first = fhir.post("Appointment", body, **{"Idempotency-Key": "k-1"})
    retry = fhir.post("Appointment", body, **{"Idempotency-Key": "k-1"})
    assert (first.status_code, retry.status_code) == (201, 201) and first.fhir == retry.fhir
    assert retry["Idempotent-Replayed"] == "true" and Appointment.objects.count() == 1
    reused = fhir.post(
        "Appointment",
        {**body, "identifier": [{"system": codes.APPOINTMENT_ID_SYSTEM, "value": "A-7"}]},
        **{"Idempotency-Key": "k-1"},
    )
    assert reused.status_code == 422 and issue(reused)["code"] == "conflict"


# --- before the visit ---------------------------------------------------------------------------


def test_questionnaire_answers_are_sent_and_read_back(fhir, booked):
    _, appointment_id = booked
    questionnaire = fhir.get(f"Questionnaire/{codes.QUESTIONNAIRE_ID}").fhir
    assert questionnaire["url"] == codes.QUESTIONNAIRE_URL
    assert [item["linkId"] for item in questionnaire["item"]][:2] == ["onset_date", "fever"]

    sent = fhir.put(f"QuestionnaireResponse/{appointment_id}", answers_resource(appointment_id))
    assert sent.status_code == 200
    stored = Appointment.objects.get(pk=appointment_id).questionnaire
    assert (
        stored["fever"] == "yes"
        and stored["lesion_sites"] == ["genital", "hands"]
        and stored["onset_date"] == "2026-11-28"
    )
    read = fhir.get(f"QuestionnaireResponse/{appointment_id}").fhir
    assert {item["linkId"]: item["answer"] for item in read["item"]}["notes"] == [
        {"valueString": "Sore on the hand since last week."}
    ]

    wrong = answers_resource(appointment_id)
    wrong["item"][1]["answer"] = [{"valueCoding": {"code": "maybe"}}]
    refused = fhir.put(f"QuestionnaireResponse/{appointment_id}", wrong)
    assert refused.status_code == 400 and "fever" in issue(refused)["diagnostics"]
    assert Appointment.objects.get(pk=appointment_id).questionnaire["fever"] == "yes"


def test_consents_are_consent_resources(fhir, booked):
    patient_id, appointment_id = booked
    consents = fhir.get("Consent", {"patient": f"Patient/{patient_id}"}).fhir
    by_scope = {entry["resource"]["scope"]["coding"][0]["code"]: entry["resource"] for entry in consents["entry"]}
    assert by_scope["treatment"]["status"] == "active" and by_scope["research"]["status"] == "rejected"
    assert by_scope["treatment"]["provision"]["data"][0]["reference"]["reference"] == f"Appointment/{appointment_id}"
    assert fhir.get(f"Consent/{by_scope['treatment']['id']}").status_code == 200


def test_a_photo_is_uploaded_as_media_and_read_back_as_the_stored_bytes(
    fhir,
    booked,
    private_storage,
    enqueued,
    make_image_bytes,
    django_capture_on_commit_callbacks,
):
    _, appointment_id = booked
    exif = jpeg_with_exif(make_image_bytes)
    with django_capture_on_commit_callbacks(execute=True):
        created = fhir.post("Media", media_resource(appointment_id, data=exif))
    assert created.status_code == 201, created.fhir
    photo = Photo.objects.get()
    assert enqueued == [(photo.pk, None)] and photo.uploaded_by.api_key is not None
    assert "url" not in fhir.get(f"Media/{photo.pk}").fhir["content"]  # not yet stripped by the worker
    preparing = fhir.raw("get", f"Binary/{photo.pk}")
    assert preparing.status_code == 404 and b"Exif" not in preparing.content
    read_photo(photo)  # the worker's first step
    media = fhir.get(f"Media/{photo.pk}").fhir
    assert (
        media["content"]["url"] == f"Binary/{photo.pk}"
        and media["partOf"][0]["reference"] == f"Appointment/{appointment_id}"
    )

    raw = fhir.raw("get", f"Binary/{photo.pk}")
    stored = photo.image.open("rb").read()
    assert raw.status_code == 200 and raw["Content-Type"] == "image/jpeg" and b"".join(raw.streaming_content) == stored
    assert b"Exif" not in stored  # metadata stripped as stored
    as_json = fhir.get(f"Binary/{photo.pk}", Accept=FHIR_JSON)
    assert base64.b64decode(as_json.fhir["data"]) == stored
    assert AuditEvent.objects.filter(action="view_photo", object_id=str(photo.pk), allowed=True).count() == 3

    not_base64 = media_resource(appointment_id)
    not_base64["content"]["data"] = "%%%"
    assert fhir.post("Media", not_base64).status_code == 400
    not_image = fhir.post("Media", media_resource(appointment_id, data=b"hello"))
    assert not_image.status_code == 422 and Photo.objects.count() == 1


def jpeg_with_exif(make_image_bytes):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    image = Image.open(io.BytesIO(make_image_bytes(size=(320, 240))))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif.tobytes())
    assert b"Exif" in buffer.getvalue()
    return buffer.getvalue()


def test_a_body_larger_than_a_photo_can_make_is_refused_before_it_is_read(fhir, booked, settings):
    settings.PHOTO_MAX_BYTES = 3 * 1024
    too_big = fhir.post("Media", media_resource(booked[1], data=bytes(800 * 1024)))
    assert too_big.status_code == 413 and issue(too_big)["code"] == "too-costly"
    assert Photo.objects.count() == 0


def test_photo_uploads_share_the_upload_rate_limit(fhir, booked, upload, monkeypatch):
    monkeypatch.setattr(UploadRateThrottle, "THROTTLE_RATES", {"uploads": "2/min"})
    upload(), upload()
    limited = fhir.post("Media", media_resource(booked[1]))
    assert limited.status_code == 429 and issue(limited)["code"] == "throttled" and Photo.objects.count() == 2
    assert fhir.get("Patient").status_code == 200  # other requests are not counted


# --- the result ---------------------------------------------------------------------------------


def test_risk_assessment_gives_p_mpox_the_outcome_and_the_model_as_device(fhir, booked, upload, record_result):
    _, appointment_id = booked
    waiting = fhir.get(f"RiskAssessment/{appointment_id}").fhir
    assert waiting["status"] == "registered" and "prediction" not in waiting
    prediction = record_result(upload(), 0.83)

    assessment = fhir.get(f"RiskAssessment/{appointment_id}").fhir
    assert assessment["status"] == "final"
    mpox = assessment["prediction"][0]
    assert mpox["probabilityDecimal"] == 0.83
    assert mpox["qualitativeRisk"]["coding"][0]["code"] == "suspected"
    assert codes.MPOX_SNOMED in mpox["outcome"]["coding"]
    assert assessment["performer"]["reference"] == f"Device/{prediction.model_version_id}"
    device = fhir.get(f"Device/{prediction.model_version_id}").fhir
    assert device["version"][0]["value"] == prediction.model_version.version


def test_a_case_the_model_cannot_judge_is_not_assessable_without_a_probability(fhir, booked, upload, record_result):
    _, appointment_id = booked
    record_result(upload(), 0.91, reason="blurred")
    mpox = fhir.get(f"RiskAssessment/{appointment_id}").fhir["prediction"][0]
    assert mpox["qualitativeRisk"]["coding"][0]["code"] == "not_assessable" and "probabilityDecimal" not in mpox


def test_the_differential_is_included_when_the_prediction_has_one(upload, record_result):
    prediction = record_result(upload(), 0.7)
    prediction.differential = {"genital_herpes": 0.2, "syphilis": 0.1}
    case = prediction.photo.case
    case.refresh_from_db()
    report = {"predictions": [prediction], "still_analysing": False}
    assessment = assert_valid_fhir(risk_assessment_resource(case, report))
    assert [(p["outcome"]["coding"][0]["code"], p["probabilityDecimal"]) for p in assessment["prediction"][1:]] == [
        ("genital_herpes", 0.2),
        ("syphilis", 0.1),
    ]
    assert assessment["prediction"][1]["outcome"]["text"] == "genital herpes"


def test_diagnostic_report_bundles_photos_assessment_decision_and_instructions(
    fhir,
    booked,
    upload,
    record_result,
    clinician,
):
    _, appointment_id = booked
    photo = upload()
    record_result(photo, 0.83)
    preliminary = fhir.get(f"DiagnosticReport/{appointment_id}").fhir
    assert preliminary["status"] == "preliminary" and "conclusion" not in preliminary
    record_decision(
        case=photo.case,
        clinician=clinician,
        outcome="suspected",
        action="telehealth",
        note="staff only",
        patient_instructions="",
    )

    report = fhir.get(f"DiagnosticReport/{appointment_id}").fhir
    assert report["status"] == "final"
    assert report["media"] == [{"link": {"reference": f"Media/{photo.pk}"}, "comment": "Hands or arms"}]
    extensions = {extension["url"]: extension for extension in report["extension"]}
    assert (
        extensions[codes.RISK_ASSESSMENT_EXTENSION]["valueReference"]["reference"] == f"RiskAssessment/{appointment_id}"
    )
    assert "video or phone call" in extensions[codes.PATIENT_INSTRUCTIONS_EXTENSION]["valueString"]
    assert "Telehealth" in report["conclusion"] and "staff only" not in str(report)
    assert {coding["code"] for concept in report["conclusionCode"] for coding in concept["coding"]} == {
        "suspected",
        "telehealth",
    }


# --- lab results in -----------------------------------------------------------------------------


def test_a_pcr_observation_records_the_lab_result_and_corrections_are_kept(fhir, booked):
    _, appointment_id = booked
    posted = fhir.post("Observation", pcr_observation(appointment_id, detected=True))
    assert posted.status_code == 201 and posted.fhir["status"] == "final"
    assert posted.fhir["code"]["coding"][0]["code"] == "100383-9"
    lab = LabResult.objects.get()
    assert (lab.result, lab.result_date.isoformat(), lab.entered_by.api_key is not None) == (
        "positive",
        "2026-12-01",
        True,
    )

    same = fhir.post("Observation", pcr_observation(appointment_id, detected=True))
    assert same.status_code == 422 and "Nothing changed" in issue(same)["diagnostics"]
    no_note = fhir.post("Observation", pcr_observation(appointment_id, detected=False, status="corrected"))
    assert no_note.status_code == 422 and "why" in issue(no_note)["diagnostics"]
    corrected = fhir.post(
        "Observation", pcr_observation(appointment_id, detected=False, status="corrected", note="Sample mix-up")
    )
    assert corrected.status_code == 201 and corrected.fhir["status"] == "corrected"
    assert list(LabResult.objects.values_list("result", flat=True)) == ["negative", "positive"]
    report = fhir.get(f"DiagnosticReport/{appointment_id}").fhir
    assert report["result"][0]["reference"] == f"Observation/{corrected.fhir['id']}"
    assert fhir.get(f"Observation/{posted.fhir['id']}").fhir["valueCodeableConcept"]["coding"][0] == codes.DETECTED

    wrong_code = pcr_observation(appointment_id)
    wrong_code["code"] = {"coding": [{"system": codes.LOINC, "code": "94500-6"}]}
    assert fhir.post("Observation", wrong_code).status_code == 400


# --- another clinic -----------------------------------------------------------------------------


def test_another_clinics_key_sees_nothing_and_each_refusal_is_audited(
    fhir,
    other_fhir,
    booked,
    upload,
    record_result,
):
    patient_id, appointment_id = booked
    photo = upload()
    record_result(photo, 0.83)
    observation = fhir.post("Observation", pcr_observation(appointment_id)).fhir
    consent = fhir.get("Consent").fhir["entry"][0]["resource"]
    before = AuditEvent.objects.filter(allowed=False).count()

    paths = [
        f"Patient/{patient_id}",
        f"Appointment/{appointment_id}",
        f"QuestionnaireResponse/{appointment_id}",
        f"Consent/{consent['id']}",
        f"Media/{photo.pk}",
        f"Binary/{photo.pk}",
        f"RiskAssessment/{appointment_id}",
        f"DiagnosticReport/{appointment_id}",
        f"Observation/{observation['id']}",
    ]
    for path in paths:
        assert other_fhir.get(path).status_code == 404, path
    assert AuditEvent.objects.filter(allowed=False).count() == before + len(paths)
    for search in ("Patient", "Appointment", "Consent"):
        assert other_fhir.get(search).fhir["total"] == 0
    writes = [
        other_fhir.post("Media", media_resource(appointment_id)),
        other_fhir.post("Observation", pcr_observation(appointment_id, detected=False, status="corrected", note="x")),
        other_fhir.put(f"QuestionnaireResponse/{appointment_id}", answers_resource(appointment_id)),
        other_fhir.put(
            f"Appointment/{appointment_id}", {**fhir.get(f"Appointment/{appointment_id}").fhir, "status": "cancelled"}
        ),
    ]
    assert [response.status_code for response in writes] == [404] * 4
    assert Photo.objects.count() == 1 and LabResult.objects.count() == 1
    assert Appointment.objects.get(pk=appointment_id).status == "booked"


# --- notifications ------------------------------------------------------------------------------


def test_an_endpoint_that_chose_fhir_gets_a_bundle_of_the_resources(
    clinic,
    upload,
    record_result,
    clinician,
    deliveries_sent,
    django_capture_on_commit_callbacks,
):
    json_endpoint = WebhookEndpoint.objects.create(
        clinic=clinic, url="http://127.0.0.1:9/json", events=["case.decided"]
    )
    fhir_endpoint = WebhookEndpoint.objects.create(
        clinic=clinic,
        url="http://127.0.0.1:9/fhir",
        events=["case.decided"],
        payload_format=WebhookEndpoint.PayloadFormat.FHIR,
    )
    photo = upload()
    record_result(photo, 0.83)
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=photo.case, clinician=clinician, outcome="suspected", action="isolation_room")

    fhir_delivery = WebhookDelivery.objects.get(endpoint=fhir_endpoint)
    bundle = assert_valid_fhir(fhir_delivery.payload)
    assert bundle["type"] == "collection" and bundle["id"] == str(fhir_delivery.event_id)
    assert [entry["resource"]["resourceType"] for entry in bundle["entry"]] == [
        "Appointment",
        "RiskAssessment",
        "DiagnosticReport",
    ]
    assert WebhookDelivery.objects.get(endpoint=json_endpoint).payload["data"]["decision"]["outcome"] == "suspected"
    assert sorted(deliveries_sent) == sorted(WebhookDelivery.objects.values_list("pk", flat=True))


def test_a_fhir_delivery_is_sent_as_signed_fhir_json(db, clinic, receiver):
    endpoint = WebhookEndpoint.objects.create(
        clinic=clinic, url=receiver.url, payload_format=WebhookEndpoint.PayloadFormat.FHIR
    )
    delivery = WebhookDelivery.objects.create(
        endpoint=endpoint,
        event_type="appointment.cancelled",
        payload={"resourceType": "Bundle", "type": "collection", "entry": []},
    )

    assert attempt_delivery(delivery)
    sent = receiver.requests[0]
    assert sent["headers"]["Content-Type"] == FHIR_JSON and sent["json"]["resourceType"] == "Bundle"
    assert verify(endpoint.secret, sent["headers"]["X-Triage-Signature"], sent["body"])
