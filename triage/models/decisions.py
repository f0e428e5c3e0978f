"""Clinicians' decisions on cases."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from triage.models.cases import DECISION_OUTCOMES, Case, Outcome


class Decision(models.Model):
    class Action(models.TextChoices):
        ISOLATION_ROOM = "isolation_room", "Isolation room, PPE-ready staff"
        TELEHEALTH = "telehealth", "Telehealth instead of the visit"
        KEEP_WITH_PPE = "keep_with_ppe", "Keep the appointment, staff in PPE"
        STANDARD = "standard", "Standard waiting room"

    # The only consistent outcome + action pairs (the service and the form both check them here).
    ACTIONS_FOR_OUTCOME = {
        Outcome.SUSPECTED: (Action.ISOLATION_ROOM, Action.TELEHEALTH, Action.KEEP_WITH_PPE),
        Outcome.NOT_SUSPECTED: (Action.STANDARD,),
        Outcome.RETAKE: (),
    }
    # What the patient is told (in their language) when the clinician writes no instructions of their own.
    DEFAULT_PATIENT_MESSAGES = {
        Action.ISOLATION_ROOM: _(
            "Please come to your appointment as booked. Tell reception your booking reference "
            "on arrival: you will be seen in a separate room."
        ),
        Action.TELEHEALTH: _(
            "Please do not come to the clinic: your appointment will be a video or phone call at the booked time."
        ),
        Action.KEEP_WITH_PPE: _("Please come to your appointment as booked and cover any sores with clothing."),
        Action.STANDARD: _("Please come to your appointment as booked."),
    }

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=16, choices=DECISION_OUTCOMES)
    action = models.CharField(
        max_length=16, choices=Action.choices, blank=True, help_text="Empty for a retake request."
    )
    note = models.TextField(blank=True, help_text="For staff only.")
    patient_instructions = models.TextField(
        blank=True, help_text="What the patient is told; for a retake request, why a new photo is needed."
    )
    countersigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    countersigned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_outcome_display()} for case {self.case_id}"

    @property
    def audit_reference(self):
        return self.case.audit_reference

    @classmethod
    def problems(cls, *, outcome, action, patient_instructions):
        """{field: message} for an inconsistent decision, empty when it may be recorded. The one
        check behind both the decision form and `record_decision`."""
        if outcome not in cls.ACTIONS_FOR_OUTCOME:
            return {"outcome": "Choose an outcome."}
        problems = {}
        allowed = cls.ACTIONS_FOR_OUTCOME[outcome]
        if allowed and action not in allowed:
            labels = ", ".join(cls.Action(value).label for value in allowed)
            problems["action"] = f"With “{Outcome(outcome).label}”, choose one of: {labels}."
        elif not allowed and action:
            problems["action"] = f"“{Outcome(outcome).label}” takes no action: clear the action."
        if outcome == Outcome.RETAKE and not patient_instructions.strip():
            problems["patient_instructions"] = "Tell the patient why a new photo is needed."
        return problems

    @property
    def patient_message(self):
        """What the patient is told about this decision (never a score): the clinician's words, else the
        standard text for the action in the active language."""
        return self.patient_instructions or str(self.DEFAULT_PATIENT_MESSAGES.get(self.action, ""))
