import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_booking_reference():
    """Short, unambiguous reference a patient can read out over the phone."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


class Clinic(models.Model):
    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)

    def __str__(self):
        return self.name


class Slot(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="slots")
    starts_at = models.DateTimeField(db_index=True)
    duration_minutes = models.PositiveSmallIntegerField(default=20)

    class Meta:
        ordering = ["starts_at"]
        constraints = [models.UniqueConstraint(fields=["clinic", "starts_at"], name="one_slot_per_clinic_time")]

    def __str__(self):
        return f"{self.clinic} {self.starts_at:%Y-%m-%d %H:%M}"


class Appointment(models.Model):
    class Status(models.TextChoices):
        BOOKED = "booked", "Booked"
        CANCELLED = "cancelled", "Cancelled"
        ATTENDED = "attended", "Attended"

    patient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointments")
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="appointments")
    reference = models.CharField(max_length=12, unique=True, default=new_booking_reference, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOOKED)
    symptoms = models.TextField(blank=True, help_text="What the patient told us about the lesions.")
    lesion_onset = models.DateField(null=True, blank=True)
    consent_care = models.BooleanField(help_text="Photos may be analysed and viewed by clinic staff for this visit.")
    consent_research = models.BooleanField(default=False, help_text="Separate, optional research opt-in.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slot__starts_at"]
        constraints = [
            # A slot holds one live booking; a cancelled booking frees it.
            models.UniqueConstraint(
                fields=["slot"], condition=~Q(status="cancelled"), name="one_live_booking_per_slot"
            ),
        ]

    def __str__(self):
        return f"{self.reference} ({self.slot})"
