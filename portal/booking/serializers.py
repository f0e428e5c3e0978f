from rest_framework import serializers

from portal.booking.models import Appointment
from triage.serializers import PatientPhotoStatusSerializer


class PatientAppointmentSerializer(serializers.ModelSerializer):
    """A patient's own appointment with each photo's status. Never a score, flag or clinical outcome."""

    clinic = serializers.CharField(source="slot.clinic.name")
    starts_at = serializers.DateTimeField(source="slot.starts_at")
    photos = PatientPhotoStatusSerializer(source="case.photos", many=True)

    class Meta:
        model = Appointment
        fields = ["reference", "status", "clinic", "starts_at", "photos"]
