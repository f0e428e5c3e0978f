"""The patient's API (browser session): their own appointments and each photo's status (never a
score), and cancelling or moving one. `AppointmentChangeView` is also the base of the integration API's cancel
and move, so every change goes through the booking services the same way (cut-off included)."""

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from core.access import deny
from portal.booking.selectors import free_slots, patient_appointments
from portal.booking.serializers import PatientAppointmentSerializer, PatientSlotSerializer, RescheduleRequestSerializer
from portal.booking.services import cancel_appointment, reschedule_appointment
from triage.api import CasePhotosView, api_error
from triage.selectors import patient_case
from triage.serializers import PatientPhotoStatusSerializer


class AppointmentChangeView(generics.GenericAPIView):
    """Cancel or move one appointment through a booking service and answer with it as it is now.

    Subclasses give `get_object` (the requester's appointment, or the record wrapping it: then
    `appointment_of` unwraps it) and the `serializer_class` that shows it."""

    def appointment_of(self, obj):
        return obj

    def change(self, service, *, slots=None):
        """Apply `service` to the requester's appointment; with `slots` (those it may move to), to the
        slot the body names (and the site change it asks for). The appointment is looked up first, so someone else's is refused (and
        audited) whatever the body says."""
        obj = self.get_object()
        arguments = {} if slots is None else self.requested_move(slots)
        try:
            service(appointment=self.appointment_of(obj), actor=self.request.user, request=self.request, **arguments)
        except DjangoValidationError as error:  # past the cut-off, the slot taken, another service
            raise api_error(error)
        return Response(self.get_serializer(obj).data)

    def requested_move(self, slots):
        """{"slot": the slot the body names, if it is among `slots` (those the requester may move to),
        "change_site": whether the body asks to change site}; else a 400."""
        body = RescheduleRequestSerializer(data=self.request.data)
        body.is_valid(raise_exception=True)
        slot = slots.filter(pk=body.validated_data["slot"]).first()
        if slot is None:
            raise ValidationError({"slot": ["Not a slot this appointment can move to: choose one from slots/."]})
        return {"slot": slot, "change_site": body.validated_data["change_site"]}


class PatientView:
    """The signed-in patient's own appointment by its reference: anyone else's (or none) is an audited
    404, never a 403."""

    authentication_classes = [SessionAuthentication]

    def own_appointment(self, appointments):
        """The appointment of `appointments` (the patient's) that the URL names, or an audited 404."""
        reference = self.kwargs["reference"]
        appointment = appointments.filter(reference=reference).first()
        if appointment is None:
            deny(
                self.request,
                action="view_appointment",
                asked_for=f"appointment {reference}",
                rule="own_appointment",
                reference=reference,
                via="api",
            )
        return appointment


class OwnAppointmentsView(PatientView):
    """The signed-in patient's appointments: another patient's reference is a 404, never a 403."""

    serializer_class = PatientAppointmentSerializer
    lookup_field = "reference"

    def get_queryset(self):
        return patient_appointments(patient=self.request.user).prefetch_related("case__photos")

    def get_object(self):
        appointment = self.own_appointment(self.get_queryset())
        self.check_object_permissions(self.request, appointment)
        return appointment


class MyAppointmentListView(OwnAppointmentsView, generics.ListAPIView):
    """The patient's appointments, latest first, with each photo's status."""


class MyAppointmentView(OwnAppointmentsView, generics.RetrieveAPIView):
    """One of the patient's appointments with each photo's status."""


class MyAppointmentCancelView(OwnAppointmentsView, AppointmentChangeView):
    """Cancel one's own appointment up to the cut-off, as the appointment page does (the case closes).
    Cancelling it again answers 200 and changes nothing."""

    @extend_schema(request=None, responses={200: PatientAppointmentSerializer})
    def post(self, request, reference):
        return self.change(cancel_appointment)


class MyAppointmentSlotsView(PatientView, generics.ListAPIView):
    """Free times the appointment can move to: the same service at any site, soonest first."""

    serializer_class = PatientSlotSerializer

    def get_queryset(self):
        appointment = self.own_appointment(patient_appointments(patient=self.request.user))
        return free_slots(service=appointment.slot.service)


class MyAppointmentRescheduleView(OwnAppointmentsView, AppointmentChangeView):
    """Move one's own appointment to a free time of the same service up to the cut-off, as the
    appointment page does; moving it to the time it has changes nothing. A time at another site
    needs `change_site: true`."""

    @extend_schema(request=RescheduleRequestSerializer, responses={200: PatientAppointmentSerializer})
    def post(self, request, reference):
        return self.change(reschedule_appointment, slots=free_slots())


class MyAppointmentPhotosView(PatientView, CasePhotosView):
    """The photos of the patient's own appointment and their status (upload is on the appointment page)."""

    serializer_class = PatientPhotoStatusSerializer
    http_method_names = ["get", "head", "options"]

    def get_case(self):
        reference = self.kwargs["reference"]
        case = patient_case(patient=self.request.user, reference=reference)
        if case is None:
            deny(
                self.request,
                action="view_photo_status",
                asked_for=f"appointment {reference}",
                rule="own_appointment",
                reference=reference,
                via="api",
            )
        return case
