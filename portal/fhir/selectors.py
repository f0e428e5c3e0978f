"""Reads for the FHIR interface. Everything is scoped to the API key's clinic and to what its booking
system made (patients and appointments by its own ids): another clinic's object is simply not found."""

from portal.booking.models import Appointment, ConsentRecord
from portal.booking.selectors import LIVE_STATUSES, free_slots
from portal.integrations import selectors as integration_selectors
from portal.integrations.models import ExternalPatient
from registry.models import ModelVersion
from triage.models import LabResult, Photo
from triage.selectors import case_latest_predictions


def _as_int(value):
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if 0 < number < 2**63 else None


def clinic_slot(*, clinic, slot_id):
    """(slot, is free) of this clinic, or (None, False)."""
    slot = (
        integration_selectors.clinic_slots(clinic=clinic)
        .select_related("clinic", "service")
        .filter(pk=_as_int(slot_id))
        .first()
    )
    if slot is None:
        return None, False
    return slot, not slot.appointments.filter(status__in=LIVE_STATUSES).exists()


def free_clinic_slots(*, clinic, service_ids=None, start_bounds=()):
    """Free slots of the clinic (booking window, no live booking), optionally of some services and
    starting within `start_bounds` [(operator, datetime)], soonest first."""
    slots = free_slots(clinic=clinic)
    if service_ids is not None:
        slots = slots.filter(service_id__in=service_ids)
    return slots.filter(**_start_filters("starts_at", start_bounds))


def _start_filters(field, bounds):
    return {f"{field}__{operator}": moment for operator, moment in bounds}


def clinic_patients(*, clinic, identifier=None):
    patients = ExternalPatient.objects.filter(clinic=clinic).select_related("user").order_by("pk")
    if identifier is not None:
        patients = patients.filter(external_id=identifier)
    return patients


def clinic_patient(*, clinic, patient_id):
    return clinic_patients(clinic=clinic).filter(pk=_as_int(patient_id)).first()


def clinic_appointments(*, clinic, identifier=None, patient_id=None, statuses=None, start_bounds=()):
    """The clinic's appointments made through its booking system, latest first."""
    appointments = integration_selectors.clinic_appointments(clinic=clinic).select_related(
        "appointment__slot__service", "appointment__patient__external_patient"
    )
    if identifier is not None:
        appointments = appointments.filter(external_id=identifier)
    if patient_id is not None:
        appointments = appointments.filter(appointment__patient__external_patient__pk=_as_int(patient_id))
    if statuses is not None:
        appointments = appointments.filter(appointment__status__in=statuses)
    return appointments.filter(**_start_filters("appointment__slot__starts_at", start_bounds))


def clinic_appointment(*, clinic, appointment_id):
    """The booking system's appointment (an ExternalAppointment) with this portal id, or None."""
    return clinic_appointments(clinic=clinic).filter(appointment__pk=_as_int(appointment_id)).first()


def clinic_consents(*, clinic, patient_id=None):
    records = (
        ConsentRecord.objects.filter(appointment__external__clinic=clinic)
        .select_related("appointment__patient__external_patient")
        .order_by("pk")
    )
    if patient_id is not None:
        records = records.filter(appointment__patient__external_patient__pk=_as_int(patient_id))
    return records


def clinic_consent(*, clinic, consent_id):
    return clinic_consents(clinic=clinic).filter(pk=_as_int(consent_id)).first()


def clinic_photo(*, clinic, photo_id):
    return (
        Photo.objects.filter(case__appointment__external__clinic=clinic, pk=_as_int(photo_id))
        .select_related("case__appointment__patient__external_patient")
        .first()
    )


def case_photos(case):
    return list(case.photos.order_by("created_at", "pk"))


def case_report(case):
    """What the case's DiagnosticReport and RiskAssessment are made of."""
    predictions = case_latest_predictions(case)
    photos = case_photos(case)
    return {
        "photos": photos,
        "predictions": predictions,
        "still_analysing": any(not photo.is_settled for photo in photos),
        "decision": case.decisions.first(),
        "lab_result": case.lab_results.first(),
        "diagnosis": case.final_diagnoses.first(),
    }


def clinic_lab_result(*, clinic, observation_id):
    """(lab result, whether it corrected an earlier one) of this clinic, or (None, False)."""
    lab_result = (
        LabResult.objects.filter(case__appointment__external__clinic=clinic, pk=_as_int(observation_id))
        .select_related("case__appointment__patient__external_patient")
        .first()
    )
    if lab_result is None:
        return None, False
    return lab_result, lab_result.case.lab_results.filter(
        created_at__lte=lab_result.created_at, pk__lt=lab_result.pk
    ).exists()


def model_version(model_version_id):
    return ModelVersion.objects.filter(pk=_as_int(model_version_id)).first()


def appointment_statuses_for(fhir_statuses, mapping):
    """Portal appointment statuses for FHIR ones (unknown FHIR statuses match nothing)."""
    return [portal for portal, fhir in mapping.items() if fhir in fhir_statuses and portal in Appointment.Status.values]
