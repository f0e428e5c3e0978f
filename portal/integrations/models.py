"""A clinic's booking system acting through the API: its keys, the patients and appointments it
knows by its own ids, its webhook endpoints and every delivery to them."""

import hashlib
import secrets
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models

EXTERNAL_ID_VALIDATOR = RegexValidator(
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
    "Use 1–64 letters, digits, dots, dashes or underscores, starting with a letter or digit.",
)


def hash_key_secret(secret: str) -> str:
    """Keys are 256 random bits, so one SHA-256 is enough (a slow password hash buys nothing)."""
    return hashlib.sha256(secret.encode()).hexdigest()


class ApiKey(models.Model):
    """One integration's key, scoped to one clinic. Only `prefix` and a hash are stored: the full
    key (`<prefix>.<secret>`) is shown once, when it is made (`services.create_api_key`).

    Each key acts as its own user account (no password, no staff rights), so uploads, bookings and
    audit events name the integration that made them.
    """

    clinic = models.ForeignKey("booking.Clinic", on_delete=models.PROTECT, related_name="api_keys")
    name = models.CharField(max_length=100, help_text="Who uses this key, e.g. “Front-desk booking system”.")
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    hashed_secret = models.CharField(max_length=64, editable=False)
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="api_key", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)
    revoked_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["clinic__name", "name"]
        verbose_name = "API key"

    def __str__(self):
        return f"{self.name} ({self.clinic}, {self.prefix}…)"

    @property
    def is_revoked(self):
        return self.revoked_at is not None

    def matches(self, secret: str) -> bool:
        return secrets.compare_digest(self.hashed_secret, hash_key_secret(secret))


class ExternalPatient(models.Model):
    """A patient as a clinic's booking system knows them (its own id)."""

    clinic = models.ForeignKey("booking.Clinic", on_delete=models.PROTECT, related_name="external_patients")
    external_id = models.CharField(max_length=64, validators=[EXTERNAL_ID_VALIDATOR])
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="external_patient")
    created_by = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "external_id"], name="one_patient_per_clinic_external_id")
        ]

    def __str__(self):
        return f"{self.external_id} at {self.clinic}"


class ExternalAppointment(models.Model):
    """An appointment as a clinic's booking system knows it (its own id)."""

    clinic = models.ForeignKey("booking.Clinic", on_delete=models.PROTECT, related_name="external_appointments")
    external_id = models.CharField(max_length=64, validators=[EXTERNAL_ID_VALIDATOR])
    appointment = models.OneToOneField("booking.Appointment", on_delete=models.PROTECT, related_name="external")
    created_by = models.ForeignKey(ApiKey, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["clinic", "external_id"], name="one_appointment_per_clinic_external_id")
        ]

    def __str__(self):
        return f"{self.external_id} at {self.clinic}"


class IdempotencyRecord(models.Model):
    """The first response to a create/upload request sent with an `Idempotency-Key` header.

    A retry with the same key and the same request gets this response again (nothing is made
    twice); the same key with a different request is refused.
    """

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=100)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["api_key", "key"], name="one_response_per_idempotency_key")]

    def __str__(self):
        return f"Idempotency-Key {self.key}: {self.response_status}"


def new_webhook_secret():
    return "whsec_" + secrets.token_urlsafe(32)


class WebhookEndpoint(models.Model):
    class Event(models.TextChoices):
        CASE_FLAGGED = "case.flagged", "A case was flagged by the model"
        CASE_DECIDED = "case.decided", "A clinician recorded a decision"
        PHOTO_RETAKE_NEEDED = "photo.retake_needed", "A photo needs to be taken again"
        APPOINTMENT_CANCELLED = "appointment.cancelled", "An appointment was cancelled"
        APPOINTMENT_RESCHEDULED = "appointment.rescheduled", "An appointment moved to another time"

    class PayloadFormat(models.TextChoices):
        JSON = "json", "The portal's JSON event (application/json)"
        FHIR = "fhir", "A FHIR R4 Bundle with the changed resources (application/fhir+json)"

    clinic = models.ForeignKey("booking.Clinic", on_delete=models.PROTECT, related_name="webhook_endpoints")
    url = models.URLField(max_length=500, help_text="HTTPS in production; receives signed JSON POSTs.")
    secret = models.CharField(
        max_length=100,
        default=new_webhook_secret,
        help_text="Signs every delivery (HMAC-SHA256); give it to the receiver.",
    )
    events = models.JSONField(default=list, blank=True, help_text="Event types to send; empty means all.")
    payload_format = models.CharField(
        max_length=8,
        choices=PayloadFormat.choices,
        default=PayloadFormat.JSON,
        help_text="What each delivery carries: the JSON event, or the FHIR resources it is about.",
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["clinic__name", "url"]

    def __str__(self):
        return f"{self.url} ({self.clinic})"

    def clean(self):
        unknown = set(self.events or []) - set(self.Event.values) if isinstance(self.events, list) else {"(not a list)"}
        if unknown:
            raise ValidationError(
                {
                    "events": f"Unknown event type(s): {', '.join(sorted(map(str, unknown)))}. "
                    f"Choose from {', '.join(self.Event.values)}, or leave the list empty for all."
                }
            )

    def wants(self, event_type):
        return self.is_active and (not self.events or event_type in self.events)

    @property
    def content_type(self):
        return "application/fhir+json" if self.payload_format == self.PayloadFormat.FHIR else "application/json"


class WebhookDelivery(models.Model):
    """One event for one endpoint, with what happened at the last attempt."""

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed (no more retries)"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.PROTECT, related_name="deliveries")
    event_id = models.UUIDField(
        default=uuid.uuid4, editable=False, help_text="The same on every attempt and redelivery."
    )
    event_type = models.CharField(max_length=40, choices=WebhookEndpoint.Event.choices)
    payload = models.JSONField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self):
        return f"{self.event_type} → {self.endpoint.url} ({self.status})"
