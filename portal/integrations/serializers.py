"""JSON shapes of the integration API (a clinic's booking system)."""

from django.contrib.auth import get_user_model
from rest_framework import serializers

from portal.booking.models import Slot
from portal.integrations.models import EXTERNAL_ID_VALIDATOR, ExternalAppointment, ExternalPatient
from triage.serializers import CaseOutcomeSerializer


def _max_length(model, field_name):
    """The column's length, so a longer value is a 400 here rather than a database error."""
    return model._meta.get_field(field_name).max_length


PATIENT_ID_MAX_LENGTH = _max_length(ExternalPatient, "external_id")
APPOINTMENT_ID_MAX_LENGTH = _max_length(ExternalAppointment, "external_id")


class SlotSerializer(serializers.ModelSerializer):
    service = serializers.CharField(source="service.name", help_text="An appointment moves only within its service.")

    class Meta:
        model = Slot
        fields = ["id", "service", "starts_at", "duration_minutes"]


class PatientRequestSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=PATIENT_ID_MAX_LENGTH, validators=[EXTERNAL_ID_VALIDATOR])
    email = serializers.EmailField(
        required=False,
        default="",
        max_length=_max_length(get_user_model(), "email"),
        help_text="Optional; the portal does not email it yet.",
    )


class PatientSerializer(serializers.ModelSerializer):
    email = serializers.SerializerMethodField()

    class Meta:
        model = ExternalPatient
        fields = ["external_id", "email", "created_at"]

    def get_email(self, patient) -> str | None:
        return patient.user.email or None


class AppointmentSerializer(serializers.ModelSerializer):
    """An appointment by the booking system's id, with its triage case (outcome and decision, no scores)."""

    patient_external_id = serializers.CharField(source="appointment.patient.external_patient.external_id")
    reference = serializers.CharField(source="appointment.reference", help_text="The portal's booking reference.")
    status = serializers.CharField(source="appointment.status")
    slot = SlotSerializer(source="appointment.slot")
    case = CaseOutcomeSerializer(source="appointment.case")

    class Meta:
        model = ExternalAppointment
        fields = ["external_id", "patient_external_id", "reference", "status", "slot", "case", "created_at"]


class BookingRequestSerializer(serializers.Serializer):
    external_id = serializers.CharField(max_length=APPOINTMENT_ID_MAX_LENGTH, validators=[EXTERNAL_ID_VALIDATOR])
    patient_external_id = serializers.CharField(max_length=PATIENT_ID_MAX_LENGTH, validators=[EXTERNAL_ID_VALIDATOR])
    slot = serializers.IntegerField(min_value=1, help_text="A free slot's id (GET slots/).")
    consent_care = serializers.BooleanField(help_text="The patient agreed that staff may analyse and view the photos.")
    consent_research = serializers.BooleanField(default=False)
    symptoms = serializers.CharField(required=False, allow_blank=True, max_length=4000, default="")
    lesion_onset = serializers.DateField(required=False, allow_null=True, default=None)
