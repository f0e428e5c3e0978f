import secrets
from datetime import date

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from portal.booking.questionnaire import answers_as_text, history_answers

REFERENCE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_booking_reference():
    """Short, unambiguous reference a patient can read out over the phone."""
    return "".join(secrets.choice(REFERENCE_ALPHABET) for _ in range(8))


class Clinic(models.Model):
    """A clinic site."""

    name = models.CharField(max_length=200)
    address = models.TextField(blank=True)
    phone = models.CharField(max_length=40, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Service(models.Model):
    """What a patient books, e.g. "Sexual health check"; its length sets the length of its slots."""

    name = models.CharField(max_length=200, unique=True)
    description = models.CharField(max_length=300, blank=True)
    duration_minutes = models.PositiveSmallIntegerField(default=20)
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name


class Schedule(models.Model):
    """A clinician's weekly hours at a site for a service; `generate_slots` turns it into slots."""

    class Weekday(models.IntegerChoices):
        MONDAY = 0, _("Monday")
        TUESDAY = 1, _("Tuesday")
        WEDNESDAY = 2, _("Wednesday")
        THURSDAY = 3, _("Thursday")
        FRIDAY = 4, _("Friday")
        SATURDAY = 5, _("Saturday")
        SUNDAY = 6, _("Sunday")

    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="schedules",
        limit_choices_to={"is_staff": True},
    )
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="schedules")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="schedules")
    weekday = models.PositiveSmallIntegerField(choices=Weekday.choices)
    start_time = models.TimeField()
    end_time = models.TimeField()
    valid_from = models.DateField()
    valid_until = models.DateField(null=True, blank=True, help_text="Empty: until further notice.")

    class Meta:
        ordering = ["clinic__name", "weekday", "start_time"]
        constraints = [
            models.CheckConstraint(condition=Q(end_time__gt=models.F("start_time")), name="schedule_ends_after_start"),
        ]

    def __str__(self):
        return f"{self.clinician} · {self.clinic} · {self.service} · {self.get_weekday_display()} {self.start_time:%H:%M}–{self.end_time:%H:%M}"


class Closure(models.Model):
    """A site is closed from `first_day` to `last_day`, both included (a public holiday, a training day):
    no slots are made for those days, and slots made before the closure was entered are not offered."""

    clinic = models.ForeignKey(Clinic, on_delete=models.CASCADE, related_name="closures")
    first_day = models.DateField()
    last_day = models.DateField(help_text="The same as the first day for a one-day closure.")
    reason = models.CharField(max_length=200, blank=True, help_text="E.g. “Christmas Day”; for staff.")

    class Meta:
        ordering = ["first_day", "clinic__name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(last_day__gte=models.F("first_day")), name="closure_ends_on_or_after_start"
            ),
        ]

    def __str__(self):
        days = f"{self.first_day:%d %b %Y}" + ("" if self.last_day == self.first_day else f"–{self.last_day:%d %b %Y}")
        return f"{self.clinic} closed {days}" + (f" ({self.reason})" if self.reason else "")


class Slot(models.Model):
    clinic = models.ForeignKey(Clinic, on_delete=models.PROTECT, related_name="slots")
    service = models.ForeignKey(Service, on_delete=models.PROTECT, related_name="slots")
    clinician = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="slots",
        help_text="Set for slots made from a clinician's schedule.",
    )
    starts_at = models.DateTimeField(db_index=True)
    duration_minutes = models.PositiveSmallIntegerField(default=20)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            # A clinician is in one place at a time; this also makes slot generation idempotent.
            models.UniqueConstraint(fields=["clinician", "starts_at"], name="one_slot_per_clinician_time"),
        ]

    def __str__(self):
        return f"{self.clinic} {self.service} {self.starts_at:%Y-%m-%d %H:%M}"


class Appointment(models.Model):
    class Status(models.TextChoices):
        BOOKED = "booked", _("Booked")
        CANCELLED = "cancelled", _("Cancelled")
        ATTENDED = "attended", _("Attended")

    patient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="appointments")
    slot = models.ForeignKey(Slot, on_delete=models.PROTECT, related_name="appointments")
    reference = models.CharField(max_length=12, unique=True, default=new_booking_reference, editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BOOKED)
    questionnaire = models.JSONField(
        default=dict, blank=True, help_text="Pre-visit answers; keys documented in portal/booking/questionnaire.py."
    )
    consent_care = models.BooleanField(help_text="Current state: photos and answers may be analysed and seen by staff.")
    consent_research = models.BooleanField(default=False, help_text="Current state of the optional research opt-in.")
    language = models.CharField(max_length=10, default="en", help_text="Language of the patient's emails.")
    reminder_sent_at = models.DateTimeField(null=True, blank=True)
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

    # Where an appointment's clinic and time are kept (on its slot): the one place that says so.
    # Triage reaches appointments through Case.appointment and never imports booking (it sits below
    # portal); it builds its queries from these paths (`Case.booking_path`) and reads `clinic`,
    # `starts_at` and `history_answers()` below, so reshaping slots here cannot break it silently.
    PATHS = {"clinic": "slot__clinic", "starts_at": "slot__starts_at"}

    @property
    def clinic(self):
        return self.slot.clinic

    @property
    def clinic_id(self):
        return self.slot.clinic_id

    @property
    def starts_at(self):
        return self.slot.starts_at

    def history_answers(self) -> dict:
        """The answers the history + image model reads (`questionnaire.history_answers`)."""
        return history_answers(self.questionnaire)

    @property
    def symptoms(self):
        """The free-text answer (`notes`); API v1 still names it `symptoms`."""
        return self.questionnaire.get("notes", "")

    @property
    def lesion_onset(self):
        """The onset date answer as a date, or None; API v1 still names it `lesion_onset`."""
        onset = self.questionnaire.get("onset_date")
        return date.fromisoformat(onset) if onset else None

    def questionnaire_answers(self):
        """[(question label, answer text)] in the active language, in the questionnaire's order."""
        return answers_as_text(self.questionnaire)


class ConsentRecord(models.Model):
    """One consent given or withdrawn, with the exact text version the patient saw. Never edited."""

    class Kind(models.TextChoices):
        CARE = "care", _("Care and image analysis")
        RESEARCH = "research", _("Research use of photos")

    appointment = models.ForeignKey(Appointment, on_delete=models.PROTECT, related_name="consent_records")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    given = models.BooleanField(help_text="True: given; False: withdrawn or declined.")
    text_version = models.CharField(max_length=40)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-recorded_at", "-id"]

    def __str__(self):
        return (
            f"{self.appointment.reference} {self.kind} {'given' if self.given else 'withdrawn'} ({self.text_version})"
        )


class SignInLink(models.Model):
    """A one-time sign-in link sent by email. Only a hash of its token is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True)
    next_url = models.CharField(max_length=200, blank=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self):
        return f"Sign-in link for user {self.user_id}, made {self.created_at:%Y-%m-%d %H:%M}"  # never the token


class PatientInformation(models.Model):
    """The clinic's page for patients about mpox, one per language; edited in admin."""

    language = models.CharField(max_length=10, unique=True, choices=settings.LANGUAGES)
    title = models.CharField(max_length=200)
    symptoms = models.TextField(help_text="Blank lines separate paragraphs.")
    how_it_spreads = models.TextField()
    before_your_visit = models.TextField()
    vaccination = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "patient information"

    def __str__(self):
        return f"{self.title} ({self.language})"
