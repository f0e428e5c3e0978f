"""Portal objects as FHIR R4 resources. Every builder returns a plain dict that has been validated by
the `fhir.resources` model of its type (the R4B package: identical to R4 for every resource served here).

Ids: Patient, Appointment, Slot, Consent, Media/Binary (a photo), Observation (a lab result) and Device
(a model version) use the portal's own ids. RiskAssessment, DiagnosticReport and QuestionnaireResponse
belong to one appointment each and share its id, so `Appointment/7` has `RiskAssessment/7`.
"""

import base64
from datetime import timedelta

from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError as PydanticValidationError

from portal.booking.questionnaire import QUESTIONNAIRE_VERSION, QUESTIONS
from portal.fhir import codes

APPOINTMENT_STATUS = {"booked": "booked", "cancelled": "cancelled", "attended": "fulfilled"}
DECISION_SUMMARY = "Decision support, not a diagnosis: a clinician reviews every case."
CAPABILITY_DATE = "2026-12-05"  # when the CapabilityStatement last changed: update it with the handlers


class InvalidResource(ValueError):
    """A resource does not validate against its FHIR model; the message says where."""


def validated(resource: dict) -> dict:
    """`resource` checked against the FHIR model of its `resourceType`, as JSON-ready data."""
    try:
        model = get_fhir_model_class(resource.get("resourceType", ""))
    except (KeyError, ValueError, TypeError):
        raise InvalidResource(f"Unknown resourceType {resource.get('resourceType')!r}.")
    try:
        return model.model_validate(resource).model_dump(mode="json", exclude_none=True)
    except PydanticValidationError as error:
        raise InvalidResource(_pydantic_words(error))


def _pydantic_words(error):
    return "; ".join(
        f"{'.'.join(str(part) for part in problem['loc']) or '(resource)'}: {problem['msg']}"
        for problem in error.errors()
    )[:1000]


def operation_outcome(*, severity, code, diagnostics, expression=None) -> dict:
    issue = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return validated({"resourceType": "OperationOutcome", "issue": [issue]})


def reference(resource_type, pk, display=None):
    ref = {"reference": f"{resource_type}/{pk}"}
    if display:
        ref["display"] = display
    return ref


def _instant(moment):
    return moment.isoformat() if moment else None


def _coding(system, code, display):
    return {"system": system, "code": code, "display": str(display)}


def search_bundle(resources, *, total, self_url, next_url=None) -> dict:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    return validated(
        {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": total,
            "link": links,
            "entry": [
                {
                    "fullUrl": f"{resource['resourceType']}/{resource['id']}",
                    "resource": resource,
                    "search": {"mode": "match"},
                }
                for resource in resources
            ],
        }
    )


def event_bundle(*, event_id, event_type, created, resources) -> dict:
    """A webhook's FHIR body: the resources an event is about, tagged with the event type."""
    return validated(
        {
            "resourceType": "Bundle",
            "id": str(event_id),
            "type": "collection",
            "timestamp": created.isoformat(),
            "meta": {"tag": [{"system": f"{codes.NAMESPACE}:event", "code": event_type}]},
            "entry": [
                {"fullUrl": f"{resource['resourceType']}/{resource['id']}", "resource": resource}
                for resource in resources
            ],
        }
    )


def capability_statement(*, handlers, base_url, upload_limit_bytes) -> dict:
    """What this server supports, made from the handlers' own declarations (portal.fhir.api)."""
    return validated(
        {
            "resourceType": "CapabilityStatement",
            "status": "active",
            "date": CAPABILITY_DATE,
            "kind": "instance",
            "publisher": "Mpox photo triage portal",
            "description": (
                "Pre-visit mpox photo triage for a sexual-health clinic's booking system or health record. "
                f"{DECISION_SUMMARY} Resources are validated against the FHIR R4 models (fhir.resources, R4B package: "
                "identical to R4 for every resource listed). Unknown search parameters are refused (400)."
            ),
            "software": {"name": "mpox-triage-portal"},
            "implementation": {"description": "Mpox photo triage FHIR interface", "url": base_url},
            "fhirVersion": "4.0.1",
            "format": ["application/fhir+json", "json"],
            "rest": [
                {
                    "mode": "server",
                    "documentation": (
                        "Creates (POST) honour an `Idempotency-Key` header: a retry returns the first answer. Photos are "
                        f"sent as Media with content.data (base64, at most {upload_limit_bytes // (1024 * 1024)} MiB decoded)."
                    ),
                    "security": {
                        "cors": False,
                        "description": "Every request but /metadata sends `Authorization: Api-Key <key>`, "
                        "a key made for one clinic; it sees only what that clinic's booking system made.",
                    },
                    "resource": [_capability_resource(handler) for handler in handlers],
                }
            ],
        }
    )


def _capability_resource(handler):
    resource = {"type": handler.resource_type, "interaction": [{"code": code} for code in handler.interactions()]}
    if handler.__doc__:
        resource["documentation"] = " ".join(handler.__doc__.split())
    if handler.search_parameters and "search-type" in handler.interactions():
        resource["searchParam"] = [
            {"name": name, "type": kind, "documentation": documentation}
            for name, (kind, documentation) in handler.search_parameters.items()
        ]
    if "update" in handler.interactions():
        resource["updateCreate"] = False
    return resource


# --- scheduling ---------------------------------------------------------------------------------


def service_concept(service):
    return {"coding": [_coding(codes.SERVICE_SYSTEM, str(service.pk), service.name)], "text": service.name}


def slot_resource(slot, *, free) -> dict:
    return validated(
        {
            "resourceType": "Slot",
            "id": str(slot.pk),
            "schedule": {"display": f"{slot.clinic.name} · {slot.service.name}"},
            "serviceType": [service_concept(slot.service)],
            "status": "free" if free else "busy",
            "start": _instant(slot.starts_at),
            "end": _instant(slot.starts_at + timedelta(minutes=slot.duration_minutes)),
        }
    )


def patient_resource(external_patient) -> dict:
    resource = {
        "resourceType": "Patient",
        "id": str(external_patient.pk),
        "active": True,
        "meta": {"lastUpdated": _instant(external_patient.created_at)},
        "identifier": [{"system": codes.PATIENT_ID_SYSTEM, "value": external_patient.external_id}],
    }
    if external_patient.user.email:
        resource["telecom"] = [{"system": "email", "value": external_patient.user.email}]
    return validated(resource)


def patient_reference(appointment):
    external = getattr(appointment.patient, "external_patient", None)
    return reference("Patient", external.pk) if external is not None else {"display": "Patient booked on the portal"}


def appointment_resource(external_appointment) -> dict:
    appointment = external_appointment.appointment
    slot = appointment.slot
    return validated(
        {
            "resourceType": "Appointment",
            "id": str(appointment.pk),
            "identifier": [
                {"system": codes.APPOINTMENT_ID_SYSTEM, "value": external_appointment.external_id},
                {"system": codes.BOOKING_REFERENCE_SYSTEM, "value": appointment.reference},
            ],
            "status": APPOINTMENT_STATUS[appointment.status],
            "serviceType": [service_concept(slot.service)],
            "start": _instant(slot.starts_at),
            "end": _instant(slot.starts_at + timedelta(minutes=slot.duration_minutes)),
            "minutesDuration": slot.duration_minutes,
            "slot": [reference("Slot", slot.pk)],
            "created": _instant(appointment.created_at),
            "participant": [{"actor": patient_reference(appointment), "status": "accepted"}],
            "extension": [
                {"url": codes.CONSENT_CARE_EXTENSION, "valueBoolean": appointment.consent_care},
                {"url": codes.CONSENT_RESEARCH_EXTENSION, "valueBoolean": appointment.consent_research},
            ],
        }
    )


# --- before the visit ---------------------------------------------------------------------------

_ITEM_TYPES = {"date": "date", "choice": "choice", "multi": "choice", "text": "text"}


def questionnaire_resource() -> dict:
    """The pre-visit questionnaire as the portal publishes it (portal/booking/questionnaire.py)."""
    items = []
    for question in QUESTIONS:
        item = {
            "linkId": question.key,
            "text": str(question.label),
            "type": _ITEM_TYPES[question.kind],
            "required": question.required,
        }
        if question.kind == "multi":
            item["repeats"] = True
        if question.choices:
            item["answerOption"] = [
                {"valueCoding": _coding(codes.answer_system(question.key), value, label)}
                for value, label in question.choices
            ]
        items.append(item)
    return validated(
        {
            "resourceType": "Questionnaire",
            "id": codes.QUESTIONNAIRE_ID,
            "url": codes.QUESTIONNAIRE_URL,
            "version": str(QUESTIONNAIRE_VERSION),
            "name": "PreVisitMpoxQuestionnaire",
            "title": "Before your visit: skin spots or sores",
            "status": "active",
            "subjectType": ["Patient"],
            "item": items,
        }
    )


def questionnaire_response_resource(appointment) -> dict:
    answers = appointment.questionnaire or {}
    items = []
    for question in QUESTIONS:
        values = _answer_values(question, answers.get(question.key))
        if values:
            items.append({"linkId": question.key, "text": str(question.label), "answer": values})
    return validated(
        {
            "resourceType": "QuestionnaireResponse",
            "id": str(appointment.pk),
            "questionnaire": f"{codes.QUESTIONNAIRE_URL}|{answers.get('version', QUESTIONNAIRE_VERSION)}",
            "status": "completed",
            "subject": patient_reference(appointment),
            "authored": _instant(appointment.created_at),
            "item": items,
        }
    )


def _answer_values(question, value):
    if value in (None, "", []):
        return []
    if question.kind == "date":
        return [{"valueDate": value}]
    if question.kind == "text":
        return [{"valueString": value}]
    labels = dict(question.choices)
    chosen = value if question.kind == "multi" else [value]
    return [
        {"valueCoding": _coding(codes.answer_system(question.key), item, labels.get(item, item))} for item in chosen
    ]


def consent_resource(record) -> dict:
    appointment = record.appointment
    care = record.kind == "care"
    return validated(
        {
            "resourceType": "Consent",
            "id": str(record.pk),
            "status": "active" if record.given else "rejected",
            "scope": {
                "coding": [
                    _coding(
                        codes.CONSENT_SCOPE_SYSTEM,
                        "treatment" if care else "research",
                        "Treatment" if care else "Research",
                    )
                ]
            },
            "category": [{"text": record.get_kind_display()}],
            "patient": patient_reference(appointment),
            "dateTime": _instant(record.recorded_at),
            "policy": [{"uri": f"{codes.NAMESPACE}:consent-text:{record.text_version}"}],
            "provision": {
                "type": "permit" if record.given else "deny",
                "data": [{"meaning": "related", "reference": reference("Appointment", appointment.pk)}],
            },
        }
    )


def media_resource(photo) -> dict:
    appointment = photo.case.appointment
    content = {"contentType": "image/jpeg", "title": f"Photo {photo.pk}"}
    if photo.is_viewable:  # deleted, or not yet normalised by the worker: no Binary to read
        content["url"] = f"Binary/{photo.pk}"
    return validated(
        {
            "resourceType": "Media",
            "id": str(photo.pk),
            "status": "completed",
            "type": {"coding": [codes.MEDIA_TYPE_IMAGE]},
            "partOf": [reference("Appointment", appointment.pk)],
            "subject": patient_reference(appointment),
            "createdDateTime": _instant(photo.created_at),
            "bodySite": {"coding": [_coding(codes.BODY_SITE_SYSTEM, photo.body_site, photo.get_body_site_display())]},
            "width": photo.width,
            "height": photo.height,
            "content": content,
            "note": [
                {
                    "text": f"Analysis: {photo.get_status_display()}"
                    + (f" ({photo.staff_message})" if photo.staff_message else "")
                }
            ],
        }
    )


def binary_resource(photo, data: bytes) -> dict:
    return validated(
        {
            "resourceType": "Binary",
            "id": str(photo.pk),
            "contentType": "image/jpeg",
            "data": base64.b64encode(data).decode("ascii"),
        }
    )


# --- the result ---------------------------------------------------------------------------------


def device_resource(model_version) -> dict:
    return validated(
        {
            "resourceType": "Device",
            "id": str(model_version.pk),
            "status": "active" if model_version.is_active else "inactive",
            "deviceName": [{"name": model_version.version, "type": "model-name"}],
            "type": {"text": f"Mpox photo classifier ({model_version.architecture})"},
            "version": [{"value": model_version.version}],
            "note": [{"text": f"Flags a photo at P(mpox) >= {model_version.threshold:.3f}. {DECISION_SUMMARY}"}],
        }
    )


def model_outcome(case, predictions):
    """suspected / not_suspected / not_assessable / None (nothing analysed yet): the model's view of the case."""
    if not predictions:
        return None
    if case.flagged:
        return "suspected"
    return "not_suspected" if any(prediction.assessable for prediction in predictions) else "not_assessable"


_MODEL_OUTCOME_LABELS = {
    "suspected": "Suspected mpox",
    "not_suspected": "Not suspected",
    "not_assessable": "Not assessable",
}


def risk_assessment_resource(case, report) -> dict:
    """The model's assessment of the case (`report`: selectors.case_report): P(mpox) and its outcome,
    the analysed photos as basis, the model version as Device."""
    appointment = case.appointment
    predictions, still_analysing = report["predictions"], report["still_analysing"]
    outcome = model_outcome(case, predictions)
    resource = {
        "resourceType": "RiskAssessment",
        "id": str(appointment.pk),
        "status": "registered" if outcome is None else ("preliminary" if still_analysing else "final"),
        "subject": patient_reference(appointment),
        "code": {"coding": [codes.REPORT_CODE], "text": "Mpox photo triage: the model's assessment"},
        "basis": [reference("Media", prediction.photo_id) for prediction in predictions],
        "note": [{"text": DECISION_SUMMARY}],
    }
    if outcome is not None:
        newest = max(predictions, key=lambda prediction: (prediction.created_at, prediction.pk))
        resource["occurrenceDateTime"] = _instant(newest.created_at)
        resource["performer"] = reference("Device", newest.model_version_id, newest.model_version.version)
        resource["prediction"] = [_mpox_prediction(case, outcome)] + _differential(newest)
        if case.history_model_id is not None:
            resource["method"] = {
                "text": "Image model combined with the questionnaire answers (history model "
                f"{case.history_model.version})"
            }
        else:
            resource["method"] = {"text": "Image model: the highest P(mpox) of the case's assessable photos"}
    return validated(resource)


def _mpox_prediction(case, outcome):
    prediction = {
        "outcome": {"coding": [codes.MPOX_SNOMED, codes.MPOX_ICD10], "text": "Mpox"},
        "qualitativeRisk": {
            "coding": [_coding(codes.TRIAGE_OUTCOME_SYSTEM, outcome, _MODEL_OUTCOME_LABELS[outcome])],
            "text": _MODEL_OUTCOME_LABELS[outcome],
        },
    }
    probability = case.history_score if case.history_model_id is not None else case.max_probability
    if outcome != "not_assessable" and probability is not None:
        prediction["probabilityDecimal"] = round(probability, 4)
    else:
        prediction["rationale"] = "The model could not judge the photos; the patient is asked to take them again."
    return prediction


def _differential(prediction):
    """The diagnoses the model weighed, when its prediction carries a differential ({class code:
    probability}), as further predictions, most likely first, coded in codes.DIFFERENTIAL_SYSTEM."""
    differential = getattr(prediction, "differential", None) or {}
    return [
        {
            "outcome": {
                "coding": [{"system": codes.DIFFERENTIAL_SYSTEM, "code": str(code)}],
                "text": str(code).replace("_", " "),
            },
            "probabilityDecimal": round(float(probability), 4),
        }
        for code, probability in sorted(differential.items(), key=lambda item: -float(item[1]))
    ]


def diagnostic_report_resource(case, report) -> dict:
    """The case as a report (`report`: selectors.case_report): the photos, the model's RiskAssessment, the
    clinician's decision and what the patient is told, the current lab result and the final diagnosis."""
    appointment = case.appointment
    photos, decision, lab_result = report["photos"], report["decision"], report["lab_result"]
    diagnosis = report["diagnosis"]
    resource = {
        "resourceType": "DiagnosticReport",
        "id": str(appointment.pk),
        "status": "final" if decision is not None else ("preliminary" if photos else "registered"),
        "code": {"coding": [codes.REPORT_CODE], "text": "Mpox photo triage"},
        "subject": patient_reference(appointment),
        "effectiveDateTime": _instant(appointment.slot.starts_at),
        "media": [{"link": reference("Media", photo.pk), "comment": photo.get_body_site_display()} for photo in photos],
        "extension": [
            {"url": codes.RISK_ASSESSMENT_EXTENSION, "valueReference": reference("RiskAssessment", appointment.pk)}
        ],
    }
    if lab_result is not None:
        resource["result"] = [reference("Observation", lab_result.pk, lab_result.get_result_display())]
    conclusion_codes = []
    if decision is not None:
        resource["issued"] = _instant(decision.created_at)
        conclusion_codes.append(
            {"coding": [_coding(codes.TRIAGE_OUTCOME_SYSTEM, decision.outcome, decision.get_outcome_display())]}
        )
        conclusion = f"Clinician's decision: {decision.get_outcome_display()}"
        if decision.action:
            conclusion_codes.append(
                {"coding": [_coding(codes.ACTION_SYSTEM, decision.action, decision.get_action_display())]}
            )
            conclusion += f"; {decision.get_action_display()}"
        resource["conclusion"] = conclusion + "."
        resource["extension"].append(
            {"url": codes.PATIENT_INSTRUCTIONS_EXTENSION, "valueString": decision.patient_message}
        )
    if diagnosis is not None:
        coding = [_coding(codes.FINAL_DIAGNOSIS_SYSTEM, diagnosis.diagnosis, diagnosis.get_diagnosis_display())]
        if diagnosis.diagnosis == "mpox":
            coding += [codes.MPOX_SNOMED, codes.MPOX_ICD10]
        conclusion_codes.append({"coding": coding, "text": f"Final diagnosis: {diagnosis.get_diagnosis_display()}"})
    if conclusion_codes:
        resource["conclusionCode"] = conclusion_codes
    return validated(resource)


def lab_observation_resource(lab_result, *, corrects) -> dict:
    """A lab result; `corrects`: it replaced an earlier result of the case (status `corrected`)."""
    appointment = lab_result.case.appointment
    resource = {
        "resourceType": "Observation",
        "id": str(lab_result.pk),
        "status": "corrected" if corrects else "final",
        "category": [
            {
                "coding": [
                    _coding("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")
                ]
            }
        ],
        "code": {"coding": [codes.MPOX_PCR_LOINC], "text": "Mpox PCR"},
        "subject": patient_reference(appointment),
        "focus": [reference("Appointment", appointment.pk)],
        "issued": _instant(lab_result.created_at),
    }
    if lab_result.result_date:
        resource["effectiveDateTime"] = lab_result.result_date.isoformat()
    if lab_result.result == "positive":
        resource["valueCodeableConcept"] = {"coding": [codes.DETECTED], "text": "Detected"}
    elif lab_result.result == "negative":
        resource["valueCodeableConcept"] = {"coding": [codes.NOT_DETECTED], "text": "Not detected"}
    else:
        resource["dataAbsentReason"] = {"coding": [codes.NOT_PERFORMED], "text": "Not tested"}
    if lab_result.note:
        resource["note"] = [{"text": lab_result.note}]
    return validated(resource)
