"""The one table from the clinic's final diagnoses to the differential's classes (plain Python, no
torch): the training export writes folders by it, ``python -m ml train`` reads the classes back from
those folders, and the differential head of a checkpoint names the same classes.

Keys are the portal's final-diagnosis codes (``triage.models.FinalDiagnosis.Diagnosis``; a test keeps
them in step). A diagnosis with no class of its own (``other``) still counts as not mpox for the
flag, but trains no differential class. Classes the public data brought and the clinic has no
diagnosis for (``chickenpox_or_measles``) stay in the shipped head; classes the clinic brings and the
public data lacked (``molluscum``, ``folliculitis``) appear in a head trained on the clinic's export.
"""

from __future__ import annotations

from pathlib import PurePosixPath

MPOX = "mpox"
NOT_MPOX = "non_mpox"
UNCLASSIFIED = "unclassified"  # not mpox, no differential class (folder name only)

DIFFERENTIAL_CLASS = {
    "mpox": MPOX,
    "herpes": "genital_herpes",
    "syphilis": "syphilis",
    "molluscum": "molluscum",
    "warts": "genital_warts",
    "folliculitis": "folliculitis",
    "healthy": "healthy_skin",
    "other": None,
}


def training_folder(*, mpox: bool, diagnosis: str | None) -> str:
    """Where an exported photo goes: ``mpox`` or ``non_mpox/<class>`` (``non_mpox/unclassified``
    when the diagnosis is missing or has no class). The label decides mpox, not the diagnosis: a
    positive PCR is mpox whatever was diagnosed."""
    if mpox:
        return MPOX
    cls = DIFFERENTIAL_CLASS.get(diagnosis or "")
    return f"{NOT_MPOX}/{cls if cls and cls != MPOX else UNCLASSIFIED}"


def class_of(relative_path: str | PurePosixPath) -> str | None:
    """The differential class of a file under a training folder (the inverse of
    :func:`training_folder`); None for a non-mpox file with no class."""
    parts = PurePosixPath(relative_path).parts
    if parts[0] == MPOX:
        return MPOX
    if parts[0] == NOT_MPOX and len(parts) > 2 and parts[1] != UNCLASSIFIED:
        return parts[1]
    return None
