"""Periodic booking work, run by `celery worker --beat` (schedule in settings.CELERY_BEAT_SCHEDULE)."""

from celery import shared_task

from portal.booking import services, signin


@shared_task
def send_reminders_task():
    """Email tomorrow's patients; safe to run often (each appointment is reminded once)."""
    return services.send_due_reminders()


@shared_task
def generate_slots_task():
    """Extend every clinician's slots to the end of the booking window."""
    return services.generate_slots()


@shared_task
def delete_spent_sign_in_links_task():
    """One-time sign-in links are kept only while they can still be used."""
    return signin.delete_spent_links()
