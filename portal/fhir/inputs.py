"""What a clinic's system sends, read into plain values: search parameters and FHIR resources in
request bodies. Each body is first validated by its `fhir.resources` model; anything unusable is a
400 OperationOutcome that says which element is wrong."""

import base64
import binascii
import re
from datetime import date, datetime, timedelta

from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from portal.booking.forms import QuestionnaireAnswersForm
from portal.booking.questionnaire import QUESTIONS
from portal.fhir import codes
from portal.fhir.protocol import FhirInputError
from portal.fhir.resources import InvalidResource, validated

COMMON_PARAMETERS = {"_count", "_offset", "_format"}
DEFAULT_COUNT, MAX_COUNT = 50, 100
_DATE_PREFIX = re.compile(r"^(eq|ne|gt|lt|ge|le|sa|eb|ap)?(\d.*)$")


def check_parameters(params, allowed):
    unknown = sorted(set(params) - set(allowed) - COMMON_PARAMETERS)
    if unknown:
        raise FhirInputError(
            f"Unsupported search parameter(s): {', '.join(unknown)}. This resource supports: "
            f"{', '.join(sorted(allowed)) or 'none'} (and _count, _offset).",
            issue_type="not-supported",
        )


def paging(params):
    """(count, offset) from `_count` and `_offset`."""
    return _non_negative(params, "_count", DEFAULT_COUNT, upper=MAX_COUNT), _non_negative(params, "_offset", 0)


def _non_negative(params, name, default, upper=None):
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise FhirInputError(f"{name} must be a whole number.", expression=name)
    value = int(raw)
    return min(value, upper) if upper is not None else value


def token_value(raw, *, system=None, name):
    """The code of a token parameter (`code` or `system|code`); with `system`, another system is refused."""
    if "|" in raw:
        given_system, _, value = raw.partition("|")
        if system is not None and given_system and given_system != system:
            raise FhirInputError(f"{name}: use the system {system}.", expression=name)
        raw = value
    if not raw:
        raise FhirInputError(f"{name}: give a value.", expression=name)
    return raw


def reference_id(raw, resource_type, *, name):
    """The id in `Type/id` or a bare `id`."""
    prefix = f"{resource_type}/"
    value = raw[len(prefix) :] if raw.startswith(prefix) else raw
    if not value or "/" in value:
        raise FhirInputError(f"{name}: expected {resource_type}/<id>.", expression=name)
    return value


def date_bounds(values, *, name):
    """[(operator, datetime)] for `date` parameters such as `ge2026-12-01`, `lt2026-12-02T12:00:00Z` or
    `2026-12-01` (that whole local day)."""
    bounds = []
    for raw in values:
        match = _DATE_PREFIX.match(raw)
        if not match or match.group(1) in ("ne", "sa", "eb", "ap"):
            raise FhirInputError(
                f"{name}: use eq, ge, gt, le or lt followed by a date or date-time, e.g. ge2026-12-01.", expression=name
            )
        prefix, moment = match.group(1) or "eq", match.group(2)
        start, end = _period(moment, name)
        bounds += {
            "eq": [("gte", start), ("lt", end)],
            "ge": [("gte", start)],
            "gt": [("gte", end)],
            "le": [("lt", end)],
            "lt": [("lt", start)],
        }[prefix]
    return bounds


def _period(text, name):
    try:
        if "T" in text:
            moment = parse_datetime(text)
            if moment is None:
                raise ValueError(text)
            if timezone.is_naive(moment):
                moment = timezone.make_aware(moment)
            return moment, moment + timedelta(seconds=1)
        day = date.fromisoformat(text)
    except (ValueError, OverflowError):
        raise FhirInputError(
            f"{name}: {text!r} is not a date (YYYY-MM-DD) or a date-time with a time zone.", expression=name
        )
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    return start, start + timedelta(days=1)


# --- bodies -------------------------------------------------------------------------------------


def resource_of_type(body, resource_type):
    """`body` validated as a FHIR `resource_type`."""
    if body.get("resourceType") != resource_type:
        raise FhirInputError(
            f"Expected a {resource_type} resource, got {body.get('resourceType')!r}.", expression="resourceType"
        )
    try:
        return validated(body)
    except InvalidResource as error:
        raise FhirInputError(f"Not a valid {resource_type}: {error}")


def identifier_value(resource, system, *, name):
    for identifier in resource.get("identifier", []):
        if identifier.get("system") == system and identifier.get("value"):
            return identifier["value"]
    raise FhirInputError(
        f"{name}: give an identifier with system {system} (the booking system's own id).",
        expression=f"{resource['resourceType']}.identifier",
    )


def _extension_boolean(resource, url):
    for extension in resource.get("extension", []):
        if extension.get("url") == url:
            return extension.get("valueBoolean") is True
    return False


def patient_registration(body):
    """{external_id, email} of a Patient to create."""
    patient = resource_of_type(body, "Patient")
    emails = [telecom.get("value", "") for telecom in patient.get("telecom", []) if telecom.get("system") == "email"]
    return {
        "external_id": identifier_value(patient, codes.PATIENT_ID_SYSTEM, name="Patient.identifier"),
        "email": emails[0] if emails else "",
    }


def appointment_booking(body):
    """{external_id, patient_id, slot_id, consent_care, consent_research} of an Appointment to book."""
    appointment = resource_of_type(body, "Appointment")
    if appointment.get("status") != "booked":
        raise FhirInputError(
            "Appointment.status: a new appointment is created as `booked`.", expression="Appointment.status"
        )
    return {
        "external_id": identifier_value(appointment, codes.APPOINTMENT_ID_SYSTEM, name="Appointment.identifier"),
        "patient_id": _patient_participant(appointment),
        "slot_id": _single_slot(appointment),
        "consent_care": _extension_boolean(appointment, codes.CONSENT_CARE_EXTENSION),
        "consent_research": _extension_boolean(appointment, codes.CONSENT_RESEARCH_EXTENSION),
    }


def appointment_change(body):
    """{status, slot_id} of an Appointment sent back with PUT: `cancelled` cancels; another slot moves it."""
    appointment = resource_of_type(body, "Appointment")
    status = appointment.get("status")
    if status not in ("booked", "cancelled"):
        raise FhirInputError(
            "Appointment.status: send `booked` (to keep or move it) or `cancelled`.", expression="Appointment.status"
        )
    return {"status": status, "slot_id": _single_slot(appointment)}


def _single_slot(appointment):
    slots = appointment.get("slot", [])
    if len(slots) != 1:
        raise FhirInputError("Appointment.slot: reference exactly one Slot.", expression="Appointment.slot")
    return reference_id(slots[0].get("reference", ""), "Slot", name="Appointment.slot")


def _patient_participant(appointment):
    patients = [
        participant["actor"]["reference"]
        for participant in appointment.get("participant", [])
        if participant.get("actor", {}).get("reference", "").startswith("Patient/")
    ]
    if len(patients) != 1:
        raise FhirInputError(
            "Appointment.participant: name exactly one Patient as actor.", expression="Appointment.participant"
        )
    return reference_id(patients[0], "Patient", name="Appointment.participant")


def questionnaire_answers(body):
    """The stored answers (Appointment.questionnaire) of a QuestionnaireResponse to the pre-visit questionnaire,
    checked by the booking form's own rules."""
    response = resource_of_type(body, "QuestionnaireResponse")
    if response.get("questionnaire", "").split("|")[0] != codes.QUESTIONNAIRE_URL:
        raise FhirInputError(
            f"QuestionnaireResponse.questionnaire: answer {codes.QUESTIONNAIRE_URL}.",
            expression="QuestionnaireResponse.questionnaire",
        )
    kinds = {question.key: question.kind for question in QUESTIONS}
    data = {}
    for item in response.get("item", []):
        key = item.get("linkId")
        if key not in kinds:
            raise FhirInputError(
                f"QuestionnaireResponse.item: unknown linkId {key!r}.", expression="QuestionnaireResponse.item"
            )
        values = [_answer_value(answer, kinds[key], key) for answer in item.get("answer", [])]
        data[key] = values if kinds[key] == "multi" else (values[0] if values else "")
    form = QuestionnaireAnswersForm(data=data)
    if not form.is_valid():
        problems = "; ".join(f"{key}: {' '.join(errors)}" for key, errors in form.errors.items())
        raise FhirInputError(f"QuestionnaireResponse.item: {problems}", expression="QuestionnaireResponse.item")
    return form.questionnaire()


def _answer_value(answer, kind, key):
    if kind == "date" and "valueDate" in answer:
        return answer["valueDate"]
    if kind == "text" and "valueString" in answer:
        return answer["valueString"]
    if kind in ("choice", "multi") and "valueCoding" in answer:
        return answer["valueCoding"].get("code", "")
    expected = {"date": "valueDate", "text": "valueString"}.get(kind, "valueCoding")
    raise FhirInputError(
        f"QuestionnaireResponse.item {key!r}: answer with {expected}.", expression="QuestionnaireResponse.item"
    )


def photo_upload(body):
    """{appointment_id, uploaded_file, body_site} of a Media to create (the photo inline as base64)."""
    media = resource_of_type(body, "Media")
    content = media.get("content", {})
    if not content.get("data"):
        raise FhirInputError(
            "Media.content.data: send the photo itself, base64-encoded.", expression="Media.content.data"
        )
    try:
        data = base64.b64decode(content["data"], validate=True)
    except (binascii.Error, ValueError):
        raise FhirInputError("Media.content.data is not valid base64.", expression="Media.content.data")
    appointments = [
        part.get("reference", "")
        for part in media.get("partOf", [])
        if part.get("reference", "").startswith("Appointment/")
    ]
    if len(appointments) != 1:
        raise FhirInputError("Media.partOf: reference the one Appointment the photo is for.", expression="Media.partOf")
    sites = [
        coding.get("code")
        for coding in media.get("bodySite", {}).get("coding", [])
        if coding.get("system") == codes.BODY_SITE_SYSTEM
    ]
    if not sites:
        raise FhirInputError(
            f"Media.bodySite: give a coding of {codes.BODY_SITE_SYSTEM} (see the CapabilityStatement).",
            expression="Media.bodySite",
        )
    name = content.get("title") or "photo"
    return {
        "appointment_id": reference_id(appointments[0], "Appointment", name="Media.partOf"),
        "uploaded_file": SimpleUploadedFile(
            name, data, content_type=content.get("contentType", "application/octet-stream")
        ),
        "body_site": sites[0],
    }


def lab_result(body):
    """{appointment_id, result, result_date, note} of a PCR Observation."""
    observation = resource_of_type(body, "Observation")
    loinc = {
        coding.get("code")
        for coding in observation.get("code", {}).get("coding", [])
        if coding.get("system") == codes.LOINC
    }
    if not loinc & codes.MPOX_PCR_LOINC_CODES:
        raise FhirInputError(
            f"Observation.code: use LOINC {', '.join(sorted(codes.MPOX_PCR_LOINC_CODES))} (mpox virus DNA by NAA).",
            expression="Observation.code",
        )
    if observation.get("status") not in ("final", "amended", "corrected"):
        raise FhirInputError(
            "Observation.status: send final, amended or corrected results only.", expression="Observation.status"
        )
    focus = [
        item.get("reference", "")
        for item in observation.get("focus", [])
        if item.get("reference", "").startswith("Appointment/")
    ]
    if len(focus) != 1:
        raise FhirInputError(
            "Observation.focus: reference the one Appointment whose case the result belongs to.",
            expression="Observation.focus",
        )
    return {
        "appointment_id": reference_id(focus[0], "Appointment", name="Observation.focus"),
        "result": _lab_value(observation),
        "result_date": _effective_date(observation),
        "note": " ".join(note.get("text", "") for note in observation.get("note", [])).strip(),
    }


def _lab_value(observation):
    if "dataAbsentReason" in observation:
        return "not_tested"
    value = {
        (coding.get("system"), coding.get("code"))
        for coding in observation.get("valueCodeableConcept", {}).get("coding", [])
    }
    if (codes.SNOMED, codes.DETECTED["code"]) in value:
        return "positive"
    if (codes.SNOMED, codes.NOT_DETECTED["code"]) in value:
        return "negative"
    raise FhirInputError(
        f"Observation.valueCodeableConcept: use SNOMED CT {codes.DETECTED['code']} (Detected) or "
        f"{codes.NOT_DETECTED['code']} (Not detected), or a dataAbsentReason when it was not tested.",
        expression="Observation.valueCodeableConcept",
    )


def _effective_date(observation):
    effective = observation.get("effectiveDateTime")
    if not effective:
        return None
    try:
        moment = parse_datetime(effective) if "T" in effective else None
        return (
            timezone.localdate(moment) if moment and timezone.is_aware(moment) else date.fromisoformat(effective[:10])
        )
    except ValueError:
        raise FhirInputError("Observation.effectiveDateTime is not a date.", expression="Observation.effectiveDateTime")
