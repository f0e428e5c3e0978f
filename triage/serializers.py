from rest_framework import serializers

from triage.models import Photo
from triage.selectors import PROBLEM_STATUSES


class PatientPhotoStatusSerializer(serializers.ModelSerializer):
    """What a patient may know about a photo: its status, and why when it needs retaking. Never a score."""

    label = serializers.CharField(source="get_status_display")
    detail = serializers.SerializerMethodField()

    class Meta:
        model = Photo
        fields = ["id", "status", "label", "detail"]

    def get_detail(self, photo):
        return photo.status_detail if photo.status in PROBLEM_STATUSES else ""
