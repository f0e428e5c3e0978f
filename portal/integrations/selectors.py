"""Reads for integrations: keys, what a clinic's integration may see, delivery targets."""

from portal.booking.models import Appointment, Slot
from portal.booking.selectors import free_slots
from portal.integrations.models import ApiKey, ExternalAppointment, ExternalPatient, WebhookEndpoint


def api_key_by_prefix(prefix):
    return ApiKey.objects.select_related("clinic", "user").filter(prefix=prefix).first()


def clinic_free_slots(*, clinic):
    return free_slots(clinic=clinic)


def clinic_slots(*, clinic):
    return Slot.objects.filter(clinic=clinic)


def clinic_slot(*, clinic, slot_id):
    return clinic_slots(clinic=clinic).filter(pk=slot_id).first()


def clinic_patient(*, clinic, external_id):
    return ExternalPatient.objects.select_related("user").filter(clinic=clinic, external_id=external_id).first()


def clinic_appointments(*, clinic):
    return (
        ExternalAppointment.objects.filter(clinic=clinic)
        .select_related(
            f"appointment__{Appointment.PATHS['clinic']}",
            "appointment__case",
            "appointment__patient__external_patient",
        )
        .prefetch_related("appointment__case__decisions")
        .order_by(f"-appointment__{Appointment.PATHS['starts_at']}", "-pk")
    )


def clinic_appointment(*, clinic, external_id):
    return clinic_appointments(clinic=clinic).filter(external_id=external_id).first()


def external_appointment_id(appointment: Appointment):
    """The booking system's id of an appointment, or None for one booked on the portal."""
    external = ExternalAppointment.objects.filter(appointment=appointment).values_list("external_id", flat=True)
    return external.first()


def endpoints_for(*, clinic, event_type, payload_format=WebhookEndpoint.PayloadFormat.JSON):
    endpoints = WebhookEndpoint.objects.filter(clinic=clinic, is_active=True, payload_format=payload_format)
    return [endpoint for endpoint in endpoints if endpoint.wants(event_type)]
