"""The identifiers, code systems and codes of the FHIR interface, in one place (docs/fhir.md cites them).

Standard codes (checked against published value sets):
- LOINC 100383-9 "Monkeypox virus DNA [Presence] in Specimen by NAA with probe detection"; 100888-7 and
  100889-5 are its clade II and clade I variants, accepted as the same PCR result.
- SNOMED CT 359814004 "Monkeypox (disorder)"; 260373001 "Detected"; 260415000 "Not detected".
- ICD-10 B04 "Monkeypox".
Codes the portal defines itself (triage outcomes, clinician actions, services, body sites, questionnaire
answers) use systems under NAMESPACE.
"""

NAMESPACE = "urn:mpox-triage"

PATIENT_ID_SYSTEM = f"{NAMESPACE}:patient-id"  # the booking system's own patient id (per clinic)
APPOINTMENT_ID_SYSTEM = f"{NAMESPACE}:appointment-id"  # the booking system's own appointment id (per clinic)
BOOKING_REFERENCE_SYSTEM = f"{NAMESPACE}:booking-reference"  # the portal's reference the patient reads out

SERVICE_SYSTEM = f"{NAMESPACE}:service"
BODY_SITE_SYSTEM = f"{NAMESPACE}:body-site"
TRIAGE_OUTCOME_SYSTEM = f"{NAMESPACE}:triage-outcome"  # the model's and the clinician's outcomes
ACTION_SYSTEM = f"{NAMESPACE}:action"  # what the clinician decided to do with the visit
FINAL_DIAGNOSIS_SYSTEM = f"{NAMESPACE}:final-diagnosis"
DIFFERENTIAL_SYSTEM = f"{NAMESPACE}:differential"  # the model's own class codes
REPORT_CODE = {"system": f"{NAMESPACE}:report", "code": "mpox-photo-triage", "display": "Mpox photo triage"}

CONSENT_CARE_EXTENSION = f"{NAMESPACE}:extension:consent-care"
CONSENT_RESEARCH_EXTENSION = f"{NAMESPACE}:extension:consent-research"
RISK_ASSESSMENT_EXTENSION = f"{NAMESPACE}:extension:risk-assessment"
PATIENT_INSTRUCTIONS_EXTENSION = f"{NAMESPACE}:extension:patient-instructions"

QUESTIONNAIRE_ID = "pre-visit"
QUESTIONNAIRE_URL = f"{NAMESPACE}:questionnaire:pre-visit"


def answer_system(question_key):
    return f"{NAMESPACE}:questionnaire:{question_key}"


LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

MPOX_PCR_LOINC = {
    "system": LOINC,
    "code": "100383-9",
    "display": "Monkeypox virus DNA [Presence] in Specimen by NAA with probe detection",
}
MPOX_PCR_LOINC_CODES = {"100383-9", "100888-7", "100889-5"}
MPOX_SNOMED = {"system": SNOMED, "code": "359814004", "display": "Monkeypox (disorder)"}
MPOX_ICD10 = {"system": ICD10, "code": "B04", "display": "Monkeypox"}
DETECTED = {"system": SNOMED, "code": "260373001", "display": "Detected"}
NOT_DETECTED = {"system": SNOMED, "code": "260415000", "display": "Not detected"}
NOT_PERFORMED = {
    "system": "http://terminology.hl7.org/CodeSystem/data-absent-reason",
    "code": "not-performed",
    "display": "Not Performed",
}

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
MEDIA_TYPE_IMAGE = {"system": "http://terminology.hl7.org/CodeSystem/media-type", "code": "image", "display": "Image"}
