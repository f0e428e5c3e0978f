"""The integration API: a clinic's booking system, authenticated with one of that clinic's API keys.

Every lookup is scoped to the key's clinic: another clinic's patient, appointment or slot is a 404,
audited (`core.access.deny`).
Bookings and uploads accept `Idempotency-Key`; uploads are rate-limited (`uploads`).
"""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.access import deny
from portal.booking.api import AppointmentChangeView
from portal.booking.serializers import RescheduleRequestSerializer
from portal.booking.services import cancel_appointment, reschedule_appointment
from portal.integrations import selectors
from portal.integrations.authentication import ApiKeyAuthentication, IsIntegration
from portal.integrations.idempotency import IDEMPOTENCY_PARAMETER, idempotent
from portal.integrations.serializers import (
    AppointmentSerializer,
    BookingRequestSerializer,
    PatientRequestSerializer,
    PatientSerializer,
    SlotSerializer,
)
from portal.integrations.services import book_external_appointment, register_patient
from triage.api import CaseOutcomeView, CasePhotosView, api_error
from triage.serializers import PhotoStatusSerializer, PhotoUploadSerializer


class IntegrationView:
    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [IsIntegration]

    @property
    def clinic(self):
        return self.request.auth.clinic

    def external_appointment(self):
        """The key's clinic's appointment that the URL names, or an audited 404 (another clinic's, or none)."""
        external_id = self.kwargs["external_id"]
        external = selectors.clinic_appointment(clinic=self.clinic, external_id=external_id)
        if external is None:
            deny(
                self.request,
                action="view_appointment",
                asked_for=f"external appointment {external_id}",
                rule="key_clinic",
                message="No appointment with this external id at this clinic.",
                via="integration",
            )
        return external


class SlotListView(IntegrationView, generics.ListAPIView):
    """Free future slots at the key's clinic, soonest first."""

    serializer_class = SlotSerializer

    def get_queryset(self):
        return selectors.clinic_free_slots(clinic=self.clinic)


class PatientRegisterView(IntegrationView, generics.GenericAPIView):
    serializer_class = PatientSerializer

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER],
        request=PatientRequestSerializer,
        responses={200: PatientSerializer, 201: PatientSerializer},
        description="Register the clinic's patient under its own id; an id already registered returns that patient (200).",
    )
    @idempotent
    def post(self, request):
        serializer = PatientRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        patient, created = register_patient(api_key=request.auth, **serializer.validated_data)
        return Response(
            PatientSerializer(patient).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class PatientView(IntegrationView, generics.RetrieveAPIView):
    serializer_class = PatientSerializer

    def get_object(self):
        external_id = self.kwargs["external_id"]
        patient = selectors.clinic_patient(clinic=self.clinic, external_id=external_id)
        if patient is None:
            deny(
                self.request,
                action="view_patient",
                asked_for=f"external patient {external_id}",
                rule="key_clinic",
                message="No patient with this external id at this clinic.",
                via="integration",
            )
        return patient


class AppointmentListView(IntegrationView, generics.ListAPIView):
    """GET: the clinic's appointments made through the API, latest slot first. POST: book a slot."""

    serializer_class = AppointmentSerializer

    def get_queryset(self):
        return selectors.clinic_appointments(clinic=self.clinic)

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER], request=BookingRequestSerializer, responses={201: AppointmentSerializer}
    )
    @idempotent
    def post(self, request):
        booking = BookingRequestSerializer(data=request.data)
        booking.is_valid(raise_exception=True)
        data = dict(booking.validated_data)
        patient = selectors.clinic_patient(clinic=self.clinic, external_id=data.pop("patient_external_id"))
        if patient is None:
            raise ValidationError({"patient_external_id": ["No patient with this external id at this clinic."]})
        slot = selectors.clinic_slot(clinic=self.clinic, slot_id=data.pop("slot"))
        if slot is None:
            raise ValidationError({"slot": ["No slot with this id at this clinic."]})
        try:
            external = book_external_appointment(
                api_key=request.auth, patient=patient, slot=slot, request=request, **data
            )
        except DjangoValidationError as error:
            raise api_error(error)
        external = selectors.clinic_appointment(clinic=self.clinic, external_id=external.external_id)
        return Response(AppointmentSerializer(external).data, status=status.HTTP_201_CREATED)


class AppointmentView(IntegrationView, generics.RetrieveAPIView):
    """One appointment: its status, slot and triage case (flag, outcome, latest decision)."""

    serializer_class = AppointmentSerializer

    def get_object(self):
        return self.external_appointment()


class ExternalAppointmentChangeView(IntegrationView, AppointmentChangeView):
    serializer_class = AppointmentSerializer

    def get_object(self):
        return self.external_appointment()

    def appointment_of(self, external):
        return external.appointment


class AppointmentCancelView(ExternalAppointmentChangeView):
    """Cancel the appointment up to the booking cut-off, as the patient's page does: the slot is free
    again and the case leaves the clinicians' queue (no more uploads). Cancelling a cancelled
    appointment answers 200 and changes nothing, so a retry is safe."""

    @extend_schema(request=None, responses={200: AppointmentSerializer})
    def post(self, request, external_id):
        return self.change(cancel_appointment)


class AppointmentRescheduleView(ExternalAppointmentChangeView):
    """Move the appointment to another free slot of this clinic for the same service, up to the booking
    cut-off; the case, answers and photos stay with it. Moving it to the slot it has changes nothing."""

    @extend_schema(request=RescheduleRequestSerializer, responses={200: AppointmentSerializer})
    def post(self, request, external_id):
        return self.change(reschedule_appointment, slots=selectors.clinic_slots(clinic=self.clinic))


class AppointmentPhotosView(IntegrationView, CasePhotosView):
    """GET: the appointment's photos and their status. POST (multipart): upload one photo, optionally
    with the lesion marked (a box or a tap); it is analysed in the background (poll GET, or listen for webhooks)."""

    def get_case(self):
        return self.external_appointment().appointment.case

    @extend_schema(
        parameters=[IDEMPOTENCY_PARAMETER], request=PhotoUploadSerializer, responses={201: PhotoStatusSerializer}
    )
    @idempotent
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class AppointmentCaseView(IntegrationView, CaseOutcomeView):
    """The appointment's triage case: flagged or not, outcome, latest decision (no scores)."""

    def get_case(self):
        return self.external_appointment().appointment.case
