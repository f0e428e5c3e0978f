"""Writes of the FHIR interface: each one is the portal's own service (booking rules, upload checks,
correction history, audit), reached with what `inputs` read from the request."""

from django.core.exceptions import ValidationError

from portal.booking.models import Appointment
from portal.booking.services import cancel_appointment, record_questionnaire, reschedule_appointment
from portal.fhir import selectors
from portal.integrations.services import book_external_appointment, register_patient
from triage.services import accept_photo, record_ground_truth


def create_patient(*, api_key, external_id, email):
    """(patient, created): an identifier already registered at the clinic returns that patient."""
    return register_patient(api_key=api_key, external_id=external_id, email=email)


def book(*, api_key, external_id, patient_id, slot_id, consent_care, consent_research, request=None):
    clinic = api_key.clinic
    patient = selectors.clinic_patient(clinic=clinic, patient_id=patient_id)
    if patient is None:
        raise ValidationError("Appointment.participant: no such Patient at this clinic.", code="patient")
    slot, _ = selectors.clinic_slot(clinic=clinic, slot_id=slot_id)
    if slot is None:
        raise ValidationError("Appointment.slot: no such Slot at this clinic.", code="slot")
    external = book_external_appointment(
        api_key=api_key,
        external_id=external_id,
        patient=patient,
        slot=slot,
        consent_care=consent_care,
        consent_research=consent_research,
        request=request,
    )
    return selectors.clinic_appointment(clinic=clinic, appointment_id=external.appointment_id)


def change_appointment(*, api_key, external, status, slot_id, request=None):
    """`cancelled` cancels; a different slot moves the appointment; the same slot changes nothing."""
    appointment = external.appointment
    if status == "cancelled":
        cancel_appointment(appointment=appointment, actor=api_key.user, request=request)
    elif appointment.status == Appointment.Status.CANCELLED:
        raise ValidationError(
            "A cancelled appointment cannot be booked again: create a new Appointment.", code="cancelled"
        )
    elif str(appointment.slot_id) != str(slot_id):
        slot, _ = selectors.clinic_slot(clinic=api_key.clinic, slot_id=slot_id)
        if slot is None:
            raise ValidationError("Appointment.slot: no such Slot at this clinic.", code="slot")
        reschedule_appointment(appointment=appointment, slot=slot, actor=api_key.user, request=request)
    return selectors.clinic_appointment(clinic=api_key.clinic, appointment_id=appointment.pk)


def record_answers(*, api_key, external, answers, request=None):
    return record_questionnaire(appointment=external.appointment, answers=answers, actor=api_key.user, request=request)


def upload_photo(*, api_key, external, uploaded_file, body_site):
    return accept_photo(
        case=external.appointment.case, uploaded_by=api_key.user, uploaded_file=uploaded_file, body_site=body_site
    )


def record_lab_result(*, api_key, external, result, result_date, note):
    """The PCR result through the same service as the staff page: a different result adds a row (a
    correction needs a note), the same one is refused as unchanged. Returns the new LabResult."""
    added = record_ground_truth(
        case=external.appointment.case, entered_by=api_key.user, result=result, result_date=result_date, note=note
    )
    return added[0]
