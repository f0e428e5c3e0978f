"""Writes for booking: slots, appointments and consents are made and changed only here."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from core.services import audit
from portal.booking import emails, events
from portal.booking.consent import CARE_TEXT_VERSION, RESEARCH_TEXT_VERSION
from portal.booking.models import Appointment, ConsentRecord, Schedule, Slot
from portal.booking.selectors import can_change, closed_days
from triage.events import send_on_commit
from triage.services import close_case, create_case, record_site_change


def slot_taken_message():
    return _("That time was just taken — please choose another.")


def generate_slots(*, days_ahead=None, today=None) -> int:
    """Make the slots of every schedule for the coming days; returns how many were new.

    Idempotent: a clinician has one slot per start time (`one_slot_per_clinician_time`), so
    running it again, or after a schedule changed, only adds what is missing. Days a site is closed
    (`Closure`) get no slots.
    """
    days_ahead = settings.BOOKING_DAYS_AHEAD if days_ahead is None else days_ahead
    today = today or timezone.localdate()
    now = timezone.now()
    last_day = today + timedelta(days=days_ahead)
    schedules = (
        Schedule.objects.filter(service__is_active=True, valid_from__lte=last_day)
        .exclude(valid_until__lt=today)
        .select_related("service")
    )
    closed = closed_days(clinic_ids={schedule.clinic_id for schedule in schedules}, first_day=today, last_day=last_day)
    new_slots = []
    for schedule in schedules:
        length = timedelta(minutes=schedule.service.duration_minutes)
        day = max(today, schedule.valid_from)
        while day <= min(last_day, schedule.valid_until or last_day):
            if day.weekday() == schedule.weekday and (schedule.clinic_id, day) not in closed:
                start = timezone.make_aware(datetime.combine(day, schedule.start_time))
                end = timezone.make_aware(datetime.combine(day, schedule.end_time))
                while start + length <= end:
                    if start > now:
                        new_slots.append(
                            Slot(
                                clinic_id=schedule.clinic_id,
                                service_id=schedule.service_id,
                                clinician_id=schedule.clinician_id,
                                starts_at=start,
                                duration_minutes=schedule.service.duration_minutes,
                            )
                        )
                    start += length
            day += timedelta(days=1)
    before = Slot.objects.count()
    Slot.objects.bulk_create(new_slots, ignore_conflicts=True)
    return Slot.objects.count() - before


def book_appointment(
    *,
    patient,
    slot,
    consent_care,
    consent_research=False,
    questionnaire=None,
    language="en",
    booked_by=None,
    request=None,
) -> Appointment:
    """Book a slot, open its triage case and record the consents, in one transaction. `booked_by` is
    who did it, for the audit log (a booking system's key user; None: the patient).

    The slot row is locked so concurrent bookings queue up; the partial unique constraint
    `one_live_booking_per_slot` is what finally refuses a double booking. The confirmation
    email goes out once the booking is committed.
    """
    if not consent_care:
        raise ValidationError(_("We need your consent to use your answers and photos for this visit."), code="consent")
    try:
        with transaction.atomic():
            slot = _lock_future_slot(slot)
            appointment = Appointment.objects.create(
                patient=patient,
                slot=slot,
                questionnaire=questionnaire or {},
                consent_care=True,
                consent_research=consent_research,
                language=language,
            )
            ConsentRecord.objects.create(
                appointment=appointment,
                kind=ConsentRecord.Kind.CARE,
                given=True,
                text_version=CARE_TEXT_VERSION,
                recorded_by=patient,
            )
            ConsentRecord.objects.create(
                appointment=appointment,
                kind=ConsentRecord.Kind.RESEARCH,
                given=consent_research,
                text_version=RESEARCH_TEXT_VERSION,
                recorded_by=patient,
            )
            case = create_case(appointment=appointment)
            audit(
                actor=booked_by or patient,
                action="book_appointment",
                obj=case,
                request=request,
                slot=slot.pk,
                starts_at=slot.starts_at.isoformat(),
            )
            emails.send_on_commit(appointment=appointment, kind=emails.BOOKED)
    except IntegrityError:
        raise ValidationError(slot_taken_message(), code="slot_taken")
    return appointment


def reschedule_appointment(*, appointment, slot, actor, change_site=False, request=None) -> Appointment:
    """Move a booking to another free slot; the case, answers and photos stay with it. Moving it to
    the slot it already has changes nothing (a retried request is safe).

    A slot at another site is refused unless the move was asked for (`change_site`): the site is
    where the clinic prepared for the patient, so it never changes as a side effect of a new time.
    """
    _check_changeable(appointment)
    if slot.pk == appointment.slot_id:
        return appointment
    if slot.service_id != appointment.slot.service_id:
        raise ValidationError(_("Please choose a time for the same service."), code="other_service")
    previous_site = appointment.slot.clinic
    if slot.clinic_id != previous_site.pk and not change_site:
        raise ValidationError(
            _(
                "That time is at %(site)s, but you are booked at %(booked)s. Please confirm that you want to "
                "change clinic, or choose a time at %(booked)s."
            )
            % {"site": slot.clinic, "booked": previous_site},
            code="other_site",
        )
    try:
        with transaction.atomic():
            slot = _lock_future_slot(slot)
            previous_starts_at = appointment.slot.starts_at
            appointment.slot = slot
            appointment.reminder_sent_at = None
            appointment.save(update_fields=["slot", "reminder_sent_at"])
            audit(
                actor=actor,
                action="reschedule_appointment",
                obj=appointment.case,
                request=request,
                slot=slot.pk,
                starts_at=slot.starts_at.isoformat(),
            )
            if slot.clinic_id != previous_site.pk:
                record_site_change(case=appointment.case, previous_site=previous_site, actor=actor, request=request)
            emails.send_on_commit(appointment=appointment, kind=emails.RESCHEDULED)
            send_on_commit(
                events.appointment_rescheduled, appointment=appointment, previous_starts_at=previous_starts_at
            )
    except IntegrityError:
        appointment.refresh_from_db()
        raise ValidationError(slot_taken_message(), code="slot_taken")
    return appointment


def cancel_appointment(*, appointment, actor, request=None) -> Appointment:
    """Cancel a booking up to the cut-off; the slot becomes bookable again and the case closes.
    Cancelling a cancelled appointment changes nothing (a retried request is safe); the row is locked
    so two requests at once cancel (and email) once."""
    with transaction.atomic():
        locked = Appointment.objects.select_for_update().only("status").get(pk=appointment.pk)
        appointment.status = locked.status
        if appointment.status == Appointment.Status.CANCELLED:
            return appointment
        _check_changeable(appointment)
        appointment.status = Appointment.Status.CANCELLED
        appointment.save(update_fields=["status"])
        close_case(case=appointment.case)
        audit(actor=actor, action="cancel_appointment", obj=appointment.case, request=request)
        emails.send_on_commit(appointment=appointment, kind=emails.CANCELLED)
        send_on_commit(events.appointment_cancelled, appointment=appointment)
    return appointment


def record_questionnaire(*, appointment, answers, actor, request=None) -> Appointment:
    """Replace the pre-visit answers (already checked by forms.QuestionnaireAnswersForm) of a booked
    appointment, e.g. when a clinic's system sends them after booking."""
    if appointment.status != Appointment.Status.BOOKED:
        raise ValidationError(_("Answers can only be sent for a booked appointment."), code="not_booked")
    appointment.questionnaire = answers
    appointment.save(update_fields=["questionnaire"])
    audit(actor=actor, action="record_questionnaire", obj=appointment.case, request=request)
    return appointment


def set_research_consent(*, appointment, given, actor) -> Appointment:
    """Opt in to or withdraw from research use; the current state and a dated record of the change."""
    with transaction.atomic():
        appointment.consent_research = given
        appointment.save(update_fields=["consent_research"])
        ConsentRecord.objects.create(
            appointment=appointment,
            kind=ConsentRecord.Kind.RESEARCH,
            given=given,
            text_version=RESEARCH_TEXT_VERSION,
            recorded_by=actor,
        )
    return appointment


def send_due_reminders(*, now=None) -> int:
    """Email every booked patient whose appointment is tomorrow (local date), once each."""
    now = now or timezone.now()
    tomorrow = timezone.localdate(now) + timedelta(days=1)
    start = timezone.make_aware(datetime.combine(tomorrow, datetime.min.time()))
    due = Appointment.objects.filter(
        status=Appointment.Status.BOOKED,
        reminder_sent_at__isnull=True,
        slot__starts_at__gte=start,
        slot__starts_at__lt=start + timedelta(days=1),
    )
    sent = 0
    for appointment_id in due.values_list("pk", flat=True):
        with transaction.atomic():
            # Claim the row so two beat runs (or workers) never send the same reminder twice.
            appointment = (
                Appointment.objects.select_for_update(skip_locked=True)
                .filter(pk=appointment_id, reminder_sent_at__isnull=True)
                .select_related("slot__clinic", "patient")
                .first()
            )
            if appointment is None:
                continue
            appointment.reminder_sent_at = now
            appointment.save(update_fields=["reminder_sent_at"])
            emails.send_on_commit(appointment=appointment, kind=emails.REMINDER)
            sent += 1
    return sent


def _lock_future_slot(slot):
    slot = Slot.objects.select_for_update().get(pk=slot.pk)
    if slot.starts_at <= timezone.now():
        raise ValidationError(_("That time has already started — please choose another."), code="slot_past")
    return slot


def _check_changeable(appointment):
    if not can_change(appointment):
        hours = settings.BOOKING_CHANGE_CUTOFF_HOURS
        raise ValidationError(
            _(
                "Appointments can be changed or cancelled online until %(hours)s hours before they start. "
                "Please call the clinic."
            )
            % {"hours": hours},
            code="past_cutoff",
        )
