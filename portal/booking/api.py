"""The patient's API (browser session): their own appointments and each photo's status, never a score."""
from rest_framework import generics
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import NotFound

from portal.booking.selectors import patient_appointments
from portal.booking.serializers import PatientAppointmentSerializer
from triage.api import CasePhotosView
from triage.selectors import patient_case
from triage.serializers import PatientPhotoStatusSerializer


class PatientView:
    authentication_classes = [SessionAuthentication]


class MyAppointmentListView(PatientView, generics.ListAPIView):
    serializer_class = PatientAppointmentSerializer

    def get_queryset(self):
        return patient_appointments(patient=self.request.user).prefetch_related("case__photos")


class MyAppointmentView(PatientView, generics.RetrieveAPIView):
    """Another patient's reference is a 404, never a 403."""

    serializer_class = PatientAppointmentSerializer
    lookup_field = "reference"

    def get_queryset(self):
        return patient_appointments(patient=self.request.user).prefetch_related("case__photos")


class MyAppointmentPhotosView(PatientView, CasePhotosView):
    """The photos of the patient's own appointment and their status (upload is on the appointment page)."""

    serializer_class = PatientPhotoStatusSerializer
    http_method_names = ["get", "head", "options"]

    def get_case(self):
        case = patient_case(patient=self.request.user, reference=self.kwargs["reference"])
        if case is None:
            raise NotFound
        return case
