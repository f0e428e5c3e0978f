"""Cases (one per appointment), their outcome, and which staff work at which clinic site."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from ml.case_rule import prior_shift


class Outcome(models.TextChoices):
    """A case's outcome: pending until a clinician records a decision, then the decision's outcome.

    RETAKE: the clinician asked the patient for a new photo; the patient's next upload puts the case
    back to PENDING, so it returns to the queue.
    """

    PENDING = "pending", "Awaiting review"
    SUSPECTED = "suspected", "Suspected mpox"
    NOT_SUSPECTED = "not_suspected", "Not suspected"
    RETAKE = "retake", "New photo requested"


DECISION_OUTCOMES = [(value, label) for value, label in Outcome.choices if value != Outcome.PENDING]


class Case(models.Model):
    """The clinical unit a clinician decides on: one per appointment.

    Triage knows the appointment only through this relation (booking calls triage, never the
    reverse); booking closes the case when the appointment is cancelled.
    """

    appointment = models.OneToOneField("booking.Appointment", on_delete=models.PROTECT, related_name="case")
    is_open = models.BooleanField(default=True, db_index=True, help_text="Closed when the appointment is cancelled.")
    flagged = models.BooleanField(
        default=False,
        db_index=True,
        help_text="The case rule of the photos' model says suspected mpox (older models: any photo does).",
    )
    max_probability = models.FloatField(null=True, blank=True, help_text="The top assessable photo's score.")
    probability = models.FloatField(
        null=True,
        blank=True,
        help_text="The case's P(mpox) by its model's case rule (ml.case_rule), at the mpox prevalence of the "
        "model's training cases; the top photo's score for a model without a case rule.",
    )
    probability_prevalence = models.FloatField(
        null=True,
        blank=True,
        help_text="The mpox prevalence that probability assumes; empty: not recorded by the model.",
    )
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the case last entered the queue: first photo, or a retake."
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The clinician working on the case, until claimed_until.",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="When on-duty staff were told it is still undecided close to the appointment."
    )
    history_model = models.ForeignKey(
        "registry.HistoryModel",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="The history + image model whose combined score set the flag; empty: the image score alone did.",
    )
    history_score = models.FloatField(null=True, blank=True, help_text="That model's combined probability.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("review_cases", "Can see the triage queue and case pages"),
            ("decide_cases", "Can claim cases and record or countersign decisions"),
            ("export_decisions", "Can download a day's decisions as CSV"),
            ("see_all_sites", "Sees the cases of every clinic site"),
        ]

    def __str__(self):
        return f"Case {self.pk} ({self.appointment.reference})"

    @property
    def audit_reference(self):
        """The booking reference audit events of this case and its records carry (`core.services.audit`)."""
        return self.appointment.reference

    @classmethod
    def booking_path(cls, name, *, via=""):
        """The ORM path from a case (reached through `via`, e.g. "case__") to its appointment's `name`
        ("clinic", "starts_at"), as booking publishes it in `Appointment.PATHS`. Triage sits below
        portal and never imports booking: it reaches the appointment model through this relation, so
        no booking table is named in triage."""
        appointment = cls._meta.get_field("appointment").related_model
        return f"{via}appointment__{appointment.PATHS[name]}"

    @property
    def clinic(self):
        return self.appointment.clinic

    @property
    def clinic_id(self):
        return self.appointment.clinic_id

    @property
    def shown_probability(self):
        """The case's P(mpox) as staff see it, with the mpox prevalence it assumes: the clinic's
        (`MPOX_PREVALENCE`) when set and the model recorded the prevalence it was fitted at, else
        that training prevalence (`prior_shift`: the flag is the same either way). None before any
        assessable photo is scored."""
        if self.probability is None:
            return None
        stated, fitted = settings.MPOX_PREVALENCE, self.probability_prevalence
        if stated is None or fitted is None:
            return {"value": self.probability, "prevalence": fitted, "source": "training"}
        return {"value": prior_shift(self.probability, fitted, stated), "prevalence": stated, "source": "clinic"}

    @property
    def claim_holder(self):
        """The clinician whose claim on the case is still running, or None."""
        if self.claimed_by_id and self.claimed_until and self.claimed_until > timezone.now():
            return self.claimed_by
        return None


class SiteMembership(models.Model):
    """A staff member works at a clinic site; clinicians see only their sites' cases.

    On-duty members get the emails about flagged and escalated cases of that site.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_memberships")
    clinic = models.ForeignKey("booking.Clinic", on_delete=models.CASCADE, related_name="staff_memberships")
    on_duty = models.BooleanField(default=False, help_text="Receives flagged-case and escalation emails for this site.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_site")]

    def __str__(self):
        return f"{self.user} at {self.clinic}" + (" (on duty)" if self.on_duty else "")
