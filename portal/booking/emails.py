"""Emails to patients (Django's email framework), rendered in the language they booked in."""

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from portal.booking import signin

logger = logging.getLogger(__name__)

BOOKED, RESCHEDULED, CANCELLED, REMINDER = "booked", "rescheduled", "cancelled", "reminder"


def absolute_url(path):
    return settings.PORTAL_BASE_URL.rstrip("/") + path


def send_on_commit(*, appointment, kind):
    """Send once the surrounding transaction commits (a rolled-back booking sends nothing)."""
    transaction.on_commit(lambda: send_appointment_email(appointment=appointment, kind=kind))


def send_appointment_email(*, appointment, kind):
    """The booking reference, time and place, a one-time sign-in link to the appointment, and the
    information page. A mail server failure is logged; the booking itself stands. Patients
    registered by a booking system without an address get no email."""
    if not appointment.patient.email:
        return
    with translation.override(appointment.language):
        subjects = {
            BOOKED: _("Your appointment is booked (%(reference)s)"),
            RESCHEDULED: _("Your appointment has moved (%(reference)s)"),
            CANCELLED: _("Your appointment is cancelled (%(reference)s)"),
            REMINDER: _("Reminder: your appointment tomorrow (%(reference)s)"),
        }
        appointment_path = reverse("appointment", args=[appointment.reference])
        context = {
            "appointment": appointment,
            "kind": kind,
            "sign_in_url": None
            if kind == CANCELLED
            else absolute_url(signin.sign_in_link_path(user=appointment.patient, next_url=appointment_path)),
            "appointment_url": absolute_url(appointment_path),
            "information_url": absolute_url(reverse("patient-information")),
            "cutoff_hours": settings.BOOKING_CHANGE_CUTOFF_HOURS,
        }
        subject = subjects[kind] % {"reference": appointment.reference}
        body = render_to_string("booking/email/appointment.txt", context)
    try:
        send_mail(subject, body, None, [appointment.patient.email])
    except OSError:
        logger.exception("Could not send the %s email for appointment %s", kind, appointment.reference)


def send_account_email(*, to, subject, template, context, language=None):
    with translation.override(language or translation.get_language()):
        body = render_to_string(template, context)
        send_mail(str(subject), body, None, [to])
