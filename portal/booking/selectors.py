"""Reads for booking."""
from datetime import timedelta
from itertools import groupby

from django.db.models import Count
from django.utils import timezone

from portal.booking.models import Appointment, Slot

LIVE_STATUSES = [Appointment.Status.BOOKED, Appointment.Status.ATTENDED]


def bookable_slots():
    """Slots that have not started yet (taken or not: the booking service decides)."""
    return Slot.objects.filter(starts_at__gt=timezone.now()).select_related("clinic")


def free_slots(slots):
    """Those of `slots` nobody holds a live booking for, in time order."""
    return slots.exclude(appointments__status__in=LIVE_STATUSES).order_by("starts_at", "clinic__name", "pk")


def open_slots_by_day(*, days=14):
    """Free future slots within `days`, as [(local date, [slots])] in time order."""
    now = timezone.now()
    slots = free_slots(bookable_slots().filter(starts_at__lt=now + timedelta(days=days)))
    return [(day, list(day_slots)) for day, day_slots in groupby(slots, key=lambda s: timezone.localdate(s.starts_at))]


def patient_appointments(*, patient):
    return (
        Appointment.objects.filter(patient=patient)
        .select_related("slot__clinic", "case")
        .annotate(photo_count=Count("case__photos"))
        .order_by("-slot__starts_at")
    )
