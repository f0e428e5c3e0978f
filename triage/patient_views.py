"""Patient-facing triage endpoints: the status of their own photos (never a score)."""

from rest_framework.response import Response
from rest_framework.views import APIView

from core.access import deny
from triage.selectors import patient_case
from triage.serializers import PatientPhotoStatusSerializer


class PhotoStatusView(APIView):
    """Polled by static/js/photo-status.js. Another patient's reference is a 404, never a 403."""

    def get(self, request, reference):
        case = patient_case(patient=request.user, reference=reference)
        if case is None:
            deny(
                request,
                action="view_photo_status",
                asked_for=f"appointment {reference}",
                rule="own_appointment",
                reference=reference,
            )
        photos = PatientPhotoStatusSerializer(case.photos.all(), many=True).data
        return Response({"photos": photos}, headers={"Cache-Control": "private, no-store"})
