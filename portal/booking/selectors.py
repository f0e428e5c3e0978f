"""Reads for booking."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Exists, OuterRef
from django.db.models.functions import TruncDate
from django.utils import timezone

from portal.booking.models import Appointment, Clinic, Closure, PatientInformation, Service, Slot

LIVE_STATUSES = [Appointment.Status.BOOKED, Appointment.Status.ATTENDED]


def bookable_slots():
    """Slots that have not started yet (taken or not: the booking service decides)."""
    return Slot.objects.filter(starts_at__gt=timezone.now()).select_related("clinic", "service")


def free_slots(*, clinic=None, service=None):
    """Future slots within the booking window with no live booking, on days their site is open, soonest first."""
    slots = (
        bookable_slots()
        .filter(starts_at__lt=timezone.now() + timedelta(days=settings.BOOKING_DAYS_AHEAD))
        .exclude(appointments__status__in=LIVE_STATUSES)
    )
    closed = Closure.objects.filter(
        clinic=OuterRef("clinic_id"), first_day__lte=OuterRef("local_day"), last_day__gte=OuterRef("local_day")
    )
    slots = slots.annotate(local_day=TruncDate("starts_at", tzinfo=timezone.get_current_timezone())).exclude(
        Exists(closed)
    )
    if clinic is not None:
        slots = slots.filter(clinic=clinic)
    if service is not None:
        slots = slots.filter(service=service)
    return slots.order_by("starts_at", "clinic__name", "pk")


def free_days(*, clinic, service):
    """[(local date, number of free times)] for the days that have any."""
    rows = (
        free_slots(clinic=clinic, service=service)
        .annotate(day=TruncDate("starts_at", tzinfo=timezone.get_current_timezone()))
        .values("day")
        .annotate(free=Count("pk"))
        .order_by("day")
    )
    return [(row["day"], row["free"]) for row in rows]


def free_times(*, clinic, service, day):
    """The free slots of one local day, one per start time (any clinician will do for the patient)."""
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    slots = free_slots(clinic=clinic, service=service).filter(
        starts_at__gte=start, starts_at__lt=start + timedelta(days=1)
    )
    by_time = {}
    for slot in slots:
        by_time.setdefault(slot.starts_at, slot)
    return list(by_time.values())


def clinics_offering(service=None):
    """Sites with future slots (of `service`, when given)."""
    slots = bookable_slots() if service is None else bookable_slots().filter(service=service)
    return Clinic.objects.filter(pk__in=slots.values("clinic_id")).order_by("name")


def active_services():
    return Service.objects.filter(is_active=True).order_by("name")


def can_change(appointment):
    """A booked appointment can be moved or cancelled online until the cut-off before it starts."""
    cutoff = appointment.slot.starts_at - timedelta(hours=settings.BOOKING_CHANGE_CUTOFF_HOURS)
    return appointment.status == Appointment.Status.BOOKED and timezone.now() < cutoff


def patient_appointments(*, patient):
    return (
        Appointment.objects.filter(patient=patient)
        .select_related("slot__clinic", "slot__service", "case")
        .annotate(photo_count=Count("case__photos"))
        .order_by("-slot__starts_at")
    )


def patient_information(*, language):
    """The information page in `language`, else in the site's default language, else None."""
    pages = {page.language: page for page in PatientInformation.objects.all()}
    return pages.get(language) or pages.get(settings.LANGUAGE_CODE) or next(iter(pages.values()), None)


def closed_days(*, clinic_ids, first_day, last_day):
    """{(clinic id, date)} of the days from `first_day` to `last_day` on which these sites are closed."""
    closed = set()
    closures = Closure.objects.filter(clinic_id__in=clinic_ids, first_day__lte=last_day, last_day__gte=first_day)
    for closure in closures:
        day = max(closure.first_day, first_day)
        while day <= min(closure.last_day, last_day):
            closed.add((closure.clinic_id, day))
            day += timedelta(days=1)
    return closed


def appointments_during(*, closure):
    """Booked appointments at the closure's site on its days (booked before it was entered), soonest first."""
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(datetime.combine(closure.first_day, datetime.min.time()), tz)
    end = timezone.make_aware(datetime.combine(closure.last_day + timedelta(days=1), datetime.min.time()), tz)
    return Appointment.objects.filter(
        status=Appointment.Status.BOOKED,
        slot__clinic_id=closure.clinic_id,
        slot__starts_at__gte=start,
        slot__starts_at__lt=end,
    ).order_by("slot__starts_at")
