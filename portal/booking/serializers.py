from rest_framework import serializers

from portal.booking.models import Appointment, Slot
from triage.serializers import PatientPhotoStatusSerializer


class PatientAppointmentSerializer(serializers.ModelSerializer):
    """A patient's own appointment with each photo's status. Never a score, flag or clinical outcome."""

    clinic = serializers.CharField(source="slot.clinic.name")
    starts_at = serializers.DateTimeField(source="slot.starts_at")
    photos = PatientPhotoStatusSerializer(source="case.photos", many=True)

    class Meta:
        model = Appointment
        fields = ["reference", "status", "clinic", "starts_at", "photos"]


class PatientSlotSerializer(serializers.ModelSerializer):
    clinic = serializers.CharField(source="clinic.name")

    class Meta:
        model = Slot
        fields = ["id", "clinic", "starts_at", "duration_minutes"]


class RescheduleRequestSerializer(serializers.Serializer):
    slot = serializers.IntegerField(
        min_value=1,
        help_text="The id of a free slot for the same service (listed by the matching `slots/`).",
    )
    change_site = serializers.BooleanField(
        default=False,
        help_text="True to move the appointment to a slot at another clinic site; without it such a move is refused (400).",
    )
