"""Writes for integrations: API keys, patients and appointments by external id, webhook events."""

import logging
import secrets
import uuid

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.services import audit
from portal.booking.questionnaire import QUESTIONNAIRE_VERSION
from portal.booking.services import book_appointment
from portal.integrations import selectors, tasks
from portal.integrations.models import (
    ApiKey,
    ExternalAppointment,
    ExternalPatient,
    WebhookDelivery,
    WebhookEndpoint,
    hash_key_secret,
)

logger = logging.getLogger(__name__)

# Refresh `last_used_at` at most this often per key, so every request is not a write.
LAST_USED_RESOLUTION_SECONDS = 60


@transaction.atomic
def create_api_key(*, clinic, name) -> tuple[ApiKey, str]:
    """A new key for `clinic`. Returns the key and its full text, which is never stored or shown again."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    user = get_user_model().objects.create_user(username=f"api-key-{prefix}")  # no password: it cannot sign in
    api_key = ApiKey.objects.create(
        clinic=clinic, name=name, prefix=prefix, hashed_secret=hash_key_secret(secret), user=user
    )
    return api_key, f"{prefix}.{secret}"


def revoke_api_key(*, api_key, revoked_by) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit(actor=revoked_by, action="revoke_api_key", obj=api_key, clinic_id=api_key.clinic_id)
    return api_key


def record_api_key_use(*, api_key):
    now = timezone.now()
    last = api_key.last_used_at
    if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def register_patient(*, api_key, external_id, email="") -> tuple[ExternalPatient, bool]:
    """The clinic's patient with this external id, made on first use. Returns (patient, created)."""
    existing = selectors.clinic_patient(clinic=api_key.clinic, external_id=external_id)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=f"patient-{uuid.uuid4().hex[:16]}", email=email)
            patient = ExternalPatient.objects.create(
                clinic=api_key.clinic, external_id=external_id, user=user, created_by=api_key
            )
    except IntegrityError:  # made at the same moment by a concurrent request
        return selectors.clinic_patient(clinic=api_key.clinic, external_id=external_id), False
    audit(actor=api_key.user, action="register_patient", obj=user, clinic_id=api_key.clinic_id, external_id=external_id)
    return patient, True


def book_external_appointment(
    *,
    api_key,
    external_id,
    patient,
    slot,
    consent_care,
    consent_research=False,
    symptoms="",
    lesion_onset=None,
    request=None,
) -> ExternalAppointment:
    """Book `slot` (one of the key's clinic) for the clinic's `patient` under the booking system's id."""
    clinic = api_key.clinic
    if slot.clinic_id != clinic.pk:
        raise ValidationError("That slot is not at this clinic.", code="slot_clinic")
    if patient.clinic_id != clinic.pk:
        raise ValidationError("That patient is not registered at this clinic.", code="patient_clinic")
    try:
        with transaction.atomic():
            appointment = book_appointment(
                patient=patient.user,
                slot=slot,
                consent_care=consent_care,
                consent_research=consent_research,
                questionnaire={
                    "version": QUESTIONNAIRE_VERSION,
                    "notes": symptoms,
                    "onset_date": lesion_onset.isoformat() if lesion_onset else None,
                },
                booked_by=api_key.user,
                request=request,
            )
            external = ExternalAppointment.objects.create(
                clinic=clinic, external_id=external_id, appointment=appointment, created_by=api_key
            )
    except IntegrityError:
        raise ValidationError(
            f"An appointment with external id {external_id!r} already exists.", code="external_id_taken"
        )
    return external


def queue_event(*, case, event_type, data) -> list[WebhookDelivery]:
    """Record one delivery per JSON endpoint of the case's clinic that wants this event; send after commit."""
    appointment = case.appointment
    endpoints = selectors.endpoints_for(clinic=appointment.clinic, event_type=event_type)
    deliveries = []
    for endpoint in endpoints:
        delivery = WebhookDelivery(endpoint=endpoint, event_type=event_type)
        delivery.payload = {
            "id": str(delivery.event_id),
            "type": event_type,
            "created": timezone.now().isoformat(),
            "data": {
                "appointment": {
                    "reference": appointment.reference,
                    "external_id": selectors.external_appointment_id(appointment),
                    "status": appointment.status,
                    "starts_at": appointment.starts_at.isoformat(),
                },
                **data,
            },
        }
        delivery.save()
        deliveries.append(delivery)
    _send_on_commit(deliveries)
    return deliveries


def queue_fhir_event(*, clinic, event_type, payload_for) -> list[WebhookDelivery]:
    """Record one delivery per FHIR endpoint of `clinic` that wants this event; `payload_for(event_id)`
    makes the body (portal.fhir builds it, so this app never needs to know FHIR). Sent after commit."""
    endpoints = selectors.endpoints_for(
        clinic=clinic, event_type=event_type, payload_format=WebhookEndpoint.PayloadFormat.FHIR
    )
    deliveries = []
    for endpoint in endpoints:
        delivery = WebhookDelivery(endpoint=endpoint, event_type=event_type)
        delivery.payload = payload_for(delivery.event_id)
        delivery.save()
        deliveries.append(delivery)
    _send_on_commit(deliveries)
    return deliveries


def redeliver(*, delivery) -> WebhookDelivery:
    """Send a delivery again (same event id and body), whatever happened before."""
    delivery.status = WebhookDelivery.Status.PENDING
    delivery.save(update_fields=["status"])
    _send_on_commit([delivery])
    return delivery


def _send_on_commit(deliveries):
    def send():
        for delivery in deliveries:
            try:
                tasks.deliver_webhook_task.delay(delivery.pk)
            except Exception:  # the broker is down: it stays pending; tasks.requeue_unsent_deliveries sends it later
                logger.exception("Could not queue webhook delivery %s", delivery.pk)

    transaction.on_commit(send)
