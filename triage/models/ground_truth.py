"""Ground truth: lab results and final diagnoses (corrections add rows), and the training label."""

from django.conf import settings
from django.db import models

from triage.models.cases import Case


class LabResult(models.Model):
    """A laboratory mpox PCR result for a case. Never edited: a correction adds a row, and the
    newest row is the current result (`current_lab_results`)."""

    class Result(models.TextChoices):
        POSITIVE = "positive", "Mpox PCR positive"
        NEGATIVE = "negative", "Mpox PCR negative"
        NOT_TESTED = "not_tested", "Not tested"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="lab_results")
    result = models.CharField(max_length=16, choices=Result.choices)
    result_date = models.DateField(null=True, blank=True, help_text="Date of the result; empty when not tested.")
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, help_text="Why a correction was made.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_result_display()} for case {self.case_id}"

    @property
    def audit_reference(self):
        return self.case.audit_reference


class FinalDiagnosis(models.Model):
    """The final clinical diagnosis of a case; corrections add rows, the newest is current."""

    class Diagnosis(models.TextChoices):
        MPOX = "mpox", "Mpox"
        HERPES = "herpes", "Herpes"
        SYPHILIS = "syphilis", "Syphilis"
        MOLLUSCUM = "molluscum", "Molluscum contagiosum"
        WARTS = "warts", "Warts"
        FOLLICULITIS = "folliculitis", "Folliculitis / dermatosis"
        HEALTHY = "healthy", "Healthy skin"
        OTHER = "other", "Other"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="final_diagnoses")
    diagnosis = models.CharField(max_length=16, choices=Diagnosis.choices)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, help_text="Why a correction was made.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "final diagnoses"

    def __str__(self):
        return f"{self.get_diagnosis_display()} for case {self.case_id}"

    @property
    def audit_reference(self):
        return self.case.audit_reference


def is_mpox(lab_result, diagnosis):
    """The training label of a case: the lab result when it is positive or negative, else the final
    diagnosis; None when neither says, or when a negative PCR contradicts a diagnosis of mpox."""
    if lab_result in (LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE):
        positive = lab_result == LabResult.Result.POSITIVE
        if not positive and diagnosis == FinalDiagnosis.Diagnosis.MPOX:
            return None
        return positive
    if diagnosis:
        return diagnosis == FinalDiagnosis.Diagnosis.MPOX
    return None
