"""Webhook endpoints that chose FHIR (`WebhookEndpoint.payload_format`) get, for each event, a signed
Bundle of the resources it is about, through the same deliveries, retries and signatures as JSON ones."""

from django.dispatch import receiver
from django.utils import timezone

from portal.booking import events as booking_events
from portal.fhir import resources, selectors
from portal.integrations.models import WebhookEndpoint
from portal.integrations.services import queue_fhir_event
from triage import events

Event = WebhookEndpoint.Event


def _queue(case, event_type, build):
    appointment = case.appointment
    external = selectors.clinic_appointment(clinic=appointment.slot.clinic, appointment_id=appointment.pk)
    if external is None:  # booked on the portal: the booking system does not know this appointment
        return

    def payload_for(event_id):
        return resources.event_bundle(
            event_id=event_id,
            event_type=event_type,
            created=timezone.now(),
            resources=build(external, selectors.case_report(case)),
        )

    queue_fhir_event(clinic=appointment.slot.clinic, event_type=event_type, payload_for=payload_for)


def _appointment(external, report):
    return [resources.appointment_resource(external)]


def _assessment(external, report):
    return [
        resources.appointment_resource(external),
        resources.risk_assessment_resource(external.appointment.case, report),
    ]


def _report(external, report):
    return _assessment(external, report) + [resources.diagnostic_report_resource(external.appointment.case, report)]


@receiver(events.case_flagged)
def on_case_flagged(sender, case, **_):
    _queue(case, Event.CASE_FLAGGED, _assessment)


@receiver(events.case_decided)
def on_case_decided(sender, case, decision, **_):
    _queue(case, Event.CASE_DECIDED, _report)


@receiver(events.photo_retake_needed)
def on_photo_retake_needed(sender, case, photo, **_):
    _queue(
        case,
        Event.PHOTO_RETAKE_NEEDED,
        lambda external, report: [resources.media_resource(photo)] + _assessment(external, report),
    )


@receiver(booking_events.appointment_cancelled)
def on_appointment_cancelled(sender, appointment, **_):
    _queue(appointment.case, Event.APPOINTMENT_CANCELLED, _appointment)


@receiver(booking_events.appointment_rescheduled)
def on_appointment_rescheduled(sender, appointment, **_):
    _queue(appointment.case, Event.APPOINTMENT_RESCHEDULED, _appointment)
