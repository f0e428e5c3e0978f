"""Writes for booking: appointments are made and cancelled only here."""
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from portal.booking.models import Appointment, Slot
from triage.services import close_case, create_case

SLOT_TAKEN = "That slot was just taken — please choose another."
SLOT_PAST = "That slot has already started — please choose another."


def book_appointment(
    *, patient, slot, consent_care, consent_research=False, symptoms="", lesion_onset=None
) -> Appointment:
    """Book a slot and open its triage case in one transaction.

    The slot row is locked so concurrent bookings queue up; the partial unique
    constraint `one_live_booking_per_slot` is what finally refuses a double booking.
    """
    if not consent_care:
        raise ValidationError("We need your consent to use your photos for this visit.", code="consent")
    try:
        with transaction.atomic():
            slot = Slot.objects.select_for_update().get(pk=slot.pk)
            if slot.starts_at <= timezone.now():
                raise ValidationError(SLOT_PAST, code="slot_past")
            appointment = Appointment.objects.create(
                patient=patient,
                slot=slot,
                symptoms=symptoms,
                lesion_onset=lesion_onset,
                consent_care=True,
                consent_research=consent_research,
            )
            create_case(appointment=appointment)
    except IntegrityError:
        raise ValidationError(SLOT_TAKEN, code="slot_taken")
    return appointment


def cancel_appointment(*, appointment) -> Appointment:
    """Cancel a future booking; the slot becomes bookable again."""
    if appointment.status != Appointment.Status.BOOKED or appointment.slot.starts_at <= timezone.now():
        raise ValidationError("Only upcoming appointments can be cancelled.", code="not_cancellable")
    with transaction.atomic():
        appointment.status = Appointment.Status.CANCELLED
        appointment.save(update_fields=["status"])
        close_case(case=appointment.case)
    return appointment
