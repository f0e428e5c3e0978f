"""Patient-facing triage endpoints: the status of their own photos (never a score)."""
from django.http import Http404
from rest_framework.response import Response
from rest_framework.views import APIView

from core.services import audit
from triage.selectors import patient_case
from triage.serializers import PatientPhotoStatusSerializer


class PhotoStatusView(APIView):
    """Polled by static/js/photo-status.js. Another patient's reference is a 404, never a 403."""

    def get(self, request, reference):
        case = patient_case(patient=request.user, reference=reference)
        if case is None:
            audit(actor=request.user, action="view_photo_status", obj=None, allowed=False, request=request, reference=reference)
            raise Http404
        photos = PatientPhotoStatusSerializer(case.photos.all(), many=True).data
        return Response({"photos": photos}, headers={"Cache-Control": "private, no-store"})
