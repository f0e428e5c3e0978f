"""Triage's and booking's events become webhook deliveries for the clinic of the case (never a
score in a payload)."""

from django.dispatch import receiver

from portal.booking import events as booking_events
from portal.integrations.models import WebhookEndpoint
from portal.integrations.services import queue_event
from triage import events

Event = WebhookEndpoint.Event


def _case_data(case):
    return {"case": {"id": case.pk, "outcome": case.outcome, "flagged": case.flagged}}


@receiver(events.case_flagged)
def on_case_flagged(sender, case, **_):
    case.refresh_from_db(fields=["flagged", "outcome"])
    queue_event(case=case, event_type=Event.CASE_FLAGGED, data=_case_data(case))


@receiver(events.case_decided)
def on_case_decided(sender, case, decision, **_):
    data = _case_data(case)
    data["decision"] = {
        "outcome": decision.outcome,
        "action": decision.action,
        "decided_at": decision.created_at.isoformat(),
    }
    queue_event(case=case, event_type=Event.CASE_DECIDED, data=data)


@receiver(events.photo_retake_needed)
def on_photo_retake_needed(sender, case, photo, **_):
    data = _case_data(case)
    data["photo"] = {
        "id": photo.pk,
        "status": photo.status,
        "reason": photo.status_reason,
        "detail": photo.patient_message,
    }
    queue_event(case=case, event_type=Event.PHOTO_RETAKE_NEEDED, data=data)


@receiver(booking_events.appointment_cancelled)
def on_appointment_cancelled(sender, appointment, **_):
    queue_event(case=appointment.case, event_type=Event.APPOINTMENT_CANCELLED, data={})


@receiver(booking_events.appointment_rescheduled)
def on_appointment_rescheduled(sender, appointment, previous_starts_at, **_):
    queue_event(
        case=appointment.case,
        event_type=Event.APPOINTMENT_RESCHEDULED,
        data={"previous_starts_at": previous_starts_at.isoformat()},
    )
