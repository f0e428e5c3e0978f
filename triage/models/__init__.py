"""Triage's clinical records, one module per concern; every model and rule is importable from here."""

from triage.models.cases import DECISION_OUTCOMES, Case, Outcome, SiteMembership
from triage.models.decisions import Decision
from triage.models.ground_truth import FinalDiagnosis, LabResult, is_mpox
from triage.models.photos import (
    DIFFERENTIAL_NAMES,
    FileDeletionReason,
    Photo,
    Prediction,
    RoiBox,
    RoiSource,
    heatmap_upload_path,
    photo_upload_path,
)
from triage.models.reasons import (
    REASON_TEXTS,
    PhotoOutcome,
    PhotoReason,
    photo_outcome,
    reason_for_clinician,
    reason_for_patient,
)

__all__ = [
    "DECISION_OUTCOMES",
    "DIFFERENTIAL_NAMES",
    "Case",
    "Decision",
    "FileDeletionReason",
    "FinalDiagnosis",
    "LabResult",
    "Outcome",
    "Photo",
    "PhotoOutcome",
    "PhotoReason",
    "Prediction",
    "REASON_TEXTS",
    "RoiBox",
    "RoiSource",
    "SiteMembership",
    "heatmap_upload_path",
    "is_mpox",
    "photo_outcome",
    "photo_upload_path",
    "reason_for_clinician",
    "reason_for_patient",
]
