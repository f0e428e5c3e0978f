"""The case, not the photo: one probability and one flag for all assessable photos of an appointment,
and the clinic's prevalence. Plain Python (no torch), so the web process can use it.

A checkpoint with ``metadata["case_rule"]`` (``python -m ml case-rule``) says how to combine the
photos' calibrated probabilities: ``combine`` ("max", "mean" or "noisy_or", on the log-odds scale),
then a case-level Platt (``a``, ``b``) and ``threshold``, fitted on cases formed from the training
photos at case-level sensitivity ``target_sensitivity``; ``prevalence`` is the share of mpox cases
it was fitted on. A checkpoint without it keeps the photo rule: the case is flagged when any
photo's probability reaches the photo threshold, and its probability is the top photo's. The
worker's flag (``triage.analysis.refresh_case_flag``) and the live performance figures
(``modelops.performance``) both come from :func:`case_score`.

Prevalence: a probability is only true at the case mix it was fitted on. ``prior_shift`` moves it
to a clinic's stated prevalence (odds times the ratio of prior odds); the same shift applied to the
threshold flags exactly the same cases, so the validated sensitivity is kept.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

COMBINERS = ("max", "mean", "noisy_or")
_EPSILON = 1e-6


def log_odds(p: float) -> float:
    p = min(max(float(p), _EPSILON), 1 - _EPSILON)
    return math.log(p / (1 - p))


def sigmoid(z: float) -> float:
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def combine(probabilities: Sequence[float], how: str) -> float:
    """The photos' calibrated probabilities as one case score, on the log-odds scale."""
    if not probabilities:
        raise ValueError("a case score needs at least one photo")
    if how == "max":
        return max(log_odds(p) for p in probabilities)
    if how == "mean":
        return sum(log_odds(p) for p in probabilities) / len(probabilities)
    if how == "noisy_or":
        clipped = [min(max(float(p), _EPSILON), 1 - _EPSILON) for p in probabilities]
        return log_odds(1 - math.prod(1 - p for p in clipped))
    raise ValueError(f"unknown combiner {how!r} (known: {', '.join(COMBINERS)})")


@dataclass(frozen=True)
class CaseScore:
    probability: float  # at the mpox prevalence the rule was fitted at
    flagged: bool


def case_threshold(metadata: dict, photo_threshold: float) -> float:
    """The threshold a case probability is flagged at: the case rule's, else the photo threshold."""
    rule = metadata.get("case_rule")
    return float(rule["threshold"]) if rule else float(photo_threshold)


def case_score(probabilities: Sequence[float], metadata: dict, photo_threshold: float) -> CaseScore:
    """The case's probability and flag from its assessable photos' calibrated probabilities, by the
    checkpoint's ``metadata["case_rule"]``, or by the photo rule (the top photo against
    ``photo_threshold``) for a checkpoint without one."""
    rule = metadata.get("case_rule")
    if rule:
        p = sigmoid(float(rule["a"]) * combine(probabilities, rule["combine"]) + float(rule["b"]))
    else:
        p = max(probabilities)
    return CaseScore(p, p >= case_threshold(metadata, photo_threshold))


def training_prevalence(metadata: dict) -> float | None:
    """The share of mpox among the cases (or photos, for the photo rule) the shown probability was
    fitted on; None when the checkpoint does not record it."""
    rule = metadata.get("case_rule") or {}
    value = rule.get("prevalence", metadata.get("prevalence"))
    return float(value) if value is not None else None


def prior_shift(p: float, from_prevalence: float, to_prevalence: float) -> float:
    """``p``, fitted where mpox had ``from_prevalence``, at ``to_prevalence`` (Bayes: odds x prior odds
    ratio). Monotone in ``p``; identity when the prevalences are equal."""
    if not (0 < from_prevalence < 1 and 0 < to_prevalence < 1):
        raise ValueError("prevalences must lie strictly between 0 and 1")
    if p <= 0 or p >= 1:
        return float(p)
    return sigmoid(math.log(p / (1 - p)) + log_odds(to_prevalence) - log_odds(from_prevalence))
