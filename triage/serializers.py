from rest_framework import serializers

from triage.models import Photo


class PatientPhotoStatusSerializer(serializers.ModelSerializer):
    """What a patient may know about a photo: its status, and why when it needs retaking. Never a score."""

    label = serializers.CharField(source="get_status_display")
    detail = serializers.CharField(source="patient_message")
    settled = serializers.BooleanField(source="is_settled")

    class Meta:
        model = Photo
        fields = ["id", "status", "label", "detail", "settled"]
