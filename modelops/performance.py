"""Live model performance on the clinic's own lab-confirmed cases: figures per model version, the
clinicians' decisions against the same truth, active vs challenger, and the history + image model.

One case is one unit (the lab result belongs to the case). A version's score for a case comes from
the newest assessable predictions it made for the case's photos by its case rule (`ml.case_rule`;
the highest probability for a model without one); the case counts as flagged by that version when
the score reaches the rule's threshold, the same rule that flags cases in the queue. Reads only:
nothing here writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings

from ml.case_rule import case_score, case_threshold
from ml.history import fit_history_model, threshold_flagging
from ml.metrics import (
    calibration_bins,
    cohen_kappa,
    diagnostic_table,
    paired_auc_difference,
    proportion,
    roc_auc,
)
from modelops.figures import stored
from triage.history import HISTORY_FEATURES, history_features, history_probability
from triage.models import Case, LabResult, Outcome
from triage.selectors import lab_confirmed_cases, latest_predictions_by_case


@dataclass
class Performance:
    """`figures` is what the page, the admin alert and `model_performance --json` show; the arrays
    (assessed cases only) are for the plots."""

    figures: dict
    labels: np.ndarray = field(default_factory=lambda: np.array([], dtype=bool))
    scores: np.ndarray = field(default_factory=lambda: np.array([], dtype=float))


def case_scores(model_version, case_ids) -> dict[int, float | None]:
    """{case_id: score} for the cases `model_version` has scored, by its case rule (`ml.case_rule`,
    as the worker flags; the top photo's score for a model without one); None when none of its
    predictions for the case was assessable."""
    scores = {}
    for case_id, predictions in latest_predictions_by_case(model_version=model_version, case_ids=case_ids).items():
        assessed = [p.probability for p in predictions if p.assessable]
        scores[case_id] = (
            case_score(assessed, model_version.metadata, model_version.threshold).probability if assessed else None
        )
    return scores


def flag_threshold(model_version) -> float:
    """The threshold its case scores are flagged at (the case rule's, else the photo threshold)."""
    return case_threshold(model_version.metadata, model_version.threshold)


def confirmed_truth(**filters) -> dict[int, tuple[bool, str]]:
    """{case_id: (lab-confirmed mpox?, clinician outcome)} for the cases the filters select."""
    rows = lab_confirmed_cases(**filters).values_list("pk", "lab_result", "outcome")
    return {pk: (lab == LabResult.Result.POSITIVE, outcome) for pk, lab, outcome in rows}


def enough_cases(labels) -> bool:
    labels = np.asarray(labels, dtype=bool)
    return len(labels) >= settings.PERFORMANCE_MIN_CONFIRMED_CASES and labels.any() and not labels.all()


def model_performance(model_version, *, start=None, end=None, clinic_id=None) -> Performance:
    truth = confirmed_truth(start=start, end=end, clinic_id=clinic_id)
    scores = case_scores(model_version, list(truth))
    assessed = [pk for pk in truth if scores.get(pk) is not None]
    labels = np.array([truth[pk][0] for pk in assessed], dtype=bool)
    values = np.array([scores[pk] for pk in assessed], dtype=float)
    threshold = flag_threshold(model_version)
    at_threshold = diagnostic_table(labels, values >= threshold)
    enough = enough_cases(labels)
    figures = {
        "model_version": model_version.version,
        "status": model_version.status,
        "threshold": threshold,
        "filters": {"start": start and start.isoformat(), "end": end and end.isoformat(), "clinic_id": clinic_id},
        "confirmed_cases": len(truth),
        "scored_cases": len(scores),
        "assessed_cases": len(assessed),
        "positives": int(labels.sum()),
        "negatives": int((~labels).sum()),
        "min_confirmed_cases": settings.PERFORMANCE_MIN_CONFIRMED_CASES,
        "enough": bool(enough),
        "not_assessable": proportion(len(scores) - len(assessed), len(scores)),
        "at_threshold": at_threshold,
        "auc": roc_auc(labels, values) if enough else float("nan"),
        "calibration": calibration_bins(labels, values, calibration_bin_count(len(values))) if enough else [],
        "score_distribution": {
            "lab_positive": _summary(values[labels]),
            "lab_negative": _summary(values[~labels]),
        },
        "clinicians": clinician_performance(truth),
        "agreement": clinician_model_agreement(truth, scores, threshold),
        "operating_sensitivity": model_version.operating_sensitivity,
    }
    figures["alert"] = sensitivity_alert(model_version, at_threshold)
    return Performance(figures=figures, labels=labels, scores=values)


def calibration_bin_count(n_cases) -> int:
    """Equal-count bins of the reliability plot: ten from 100 cases, five below."""
    return 10 if n_cases >= 100 else 5


def clinician_performance(truth) -> dict:
    """The clinicians' decisions (suspected = a positive call) against the lab, decided cases only."""
    decided = [(label, outcome == Outcome.SUSPECTED) for label, outcome in truth.values() if outcome != Outcome.PENDING]
    return diagnostic_table([label for label, _ in decided], [call for _, call in decided])


def clinician_model_agreement(truth, scores, threshold) -> dict:
    """How often the clinician's decision matches the model flag, and Cohen's kappa, on cases with both."""
    pairs = [
        (outcome == Outcome.SUSPECTED, scores[pk] >= threshold)
        for pk, (_, outcome) in truth.items()
        if outcome != Outcome.PENDING and scores.get(pk) is not None
    ]
    return {
        "agree": proportion(sum(c == m for c, m in pairs), len(pairs)),
        "kappa": cohen_kappa([c for c, _ in pairs], [m for _, m in pairs]),
        "clinician_suspected_model_not": sum(c and not m for c, m in pairs),
        "model_flagged_clinician_not": sum(m and not c for c, m in pairs),
    }


def sensitivity_alert(model_version, at_threshold) -> str | None:
    """A warning when live sensitivity is below the model card's operating point by more than its
    95 % CI allows (the Wilson interval's upper end is below the promised sensitivity)."""
    promised = model_version.operating_sensitivity
    sensitivity = at_threshold["sensitivity"]
    if promised is None or sensitivity["n"] == 0:
        return None
    low, high = sensitivity["ci95"]
    if high >= promised:
        return None
    return (
        f"Live sensitivity of {model_version.version} at threshold {flag_threshold(model_version):.3f} is "
        f"{sensitivity['value']:.0%} ({sensitivity['successes']} of {sensitivity['n']} lab-confirmed mpox cases flagged; "
        f"95% CI {low:.0%}–{high:.0%}), below the {promised:.0%} its model card promises. "
        "Review recent missed cases and consider a challenger or a lower threshold."
    )


def compare_models(active, challenger, *, start=None, end=None, clinic_id=None) -> Performance:
    """Active vs challenger on the same confirmed cases (both assessed them); see `paired_comparison`."""
    truth = confirmed_truth(start=start, end=end, clinic_id=clinic_id)
    return paired_comparison(
        truth,
        (active.version, flag_threshold(active), case_scores(active, list(truth))),
        (challenger.version, flag_threshold(challenger), case_scores(challenger, list(truth))),
    )


def paired_comparison(truth, active, challenger) -> Performance:
    """Two scores on the same confirmed cases (those both scored): paired AUC difference with a
    bootstrap CI, each score at both thresholds, and whether promotion would be allowed.
    `active` and `challenger` are (name, threshold, {case_id: score or None}). `labels`/`scores`
    hold the active scores; `figures["challenger_scores"]` the other's."""
    (active_name, active_threshold, active_scores) = active
    (challenger_name, challenger_threshold, challenger_scores) = challenger
    paired = [pk for pk in truth if active_scores.get(pk) is not None and challenger_scores.get(pk) is not None]
    labels = np.array([truth[pk][0] for pk in paired], dtype=bool)
    a = np.array([active_scores[pk] for pk in paired], dtype=float)
    b = np.array([challenger_scores[pk] for pk in paired], dtype=float)
    both_outcomes = bool(labels.any() and not labels.all())
    figures = {
        "active": active_name,
        "challenger": challenger_name,
        "active_threshold": active_threshold,
        "challenger_threshold": challenger_threshold,
        "paired_cases": len(paired),
        "positives": int(labels.sum()),
        "negatives": int((~labels).sum()),
        "min_confirmed_cases": settings.PROMOTION_MIN_CONFIRMED_CASES,
        "auc_difference": paired_auc_difference(labels, a, b, n_boot=settings.PERFORMANCE_BOOTSTRAP_SAMPLES)
        if both_outcomes
        else None,
        "thresholds": [
            {
                "threshold_of": name,
                "threshold": threshold,
                "active": diagnostic_table(labels, a >= threshold),
                "challenger": diagnostic_table(labels, b >= threshold),
            }
            for name, threshold in (("active", active_threshold), ("challenger", challenger_threshold))
        ],
        "own_threshold": {
            "active": diagnostic_table(labels, a >= active_threshold),
            "challenger": diagnostic_table(labels, b >= challenger_threshold),
        },
        "challenger_scores": b.tolist(),
    }
    figures["promotion_refusal"] = promotion_refusal(figures)
    return Performance(figures=figures, labels=labels, scores=a)


def promotion_refusal(comparison) -> str | None:
    """Why the challenger (a model version, or a history + image model) may not replace what flags
    cases now, or None when it may. The one promotion rule."""
    needed, candidate, current = comparison["min_confirmed_cases"], comparison["challenger"], comparison["active"]
    if comparison["paired_cases"] < needed:
        return (
            f"{candidate} has {comparison['paired_cases']} lab-confirmed cases scored alongside {current}; "
            f"promotion needs at least {needed}."
        )
    if comparison["positives"] == 0:
        return "None of the shared confirmed cases is mpox PCR positive, so sensitivity cannot be compared."
    active = comparison["own_threshold"]["active"]["sensitivity"]
    challenger = comparison["own_threshold"]["challenger"]["sensitivity"]
    if challenger["successes"] < active["successes"]:
        return (
            f"{candidate} is worse on sensitivity: it flags {challenger['successes']} of {challenger['n']} "
            f"lab-confirmed mpox cases at its threshold, {current} {active['successes']} of {active['n']}."
        )
    return None


def history_scores(history_model, image_scores) -> dict[int, float | None]:
    """{case_id: combined probability} from {case_id: its image model's case score}; None where
    that has none."""
    cases = (
        Case.objects.filter(pk__in=list(image_scores))
        .select_related(Case.booking_path("clinic"))
        .prefetch_related("photos")
    )
    return {
        case.pk: None
        if image_scores[case.pk] is None
        else history_probability(history_model, case, image_scores[case.pk])
        for case in cases
    }


def compare_history_model(history_model, *, start=None, end=None, clinic_id=None) -> Performance:
    """The image score alone (as "active") vs the history + image model (as "challenger") on the
    confirmed cases it was not fitted on, by the same paired comparison and promotion rule."""
    truth = confirmed_truth(start=start, end=end, clinic_id=clinic_id)
    for pk in history_model.fitted_case_ids:
        truth.pop(pk, None)
    image_model = history_model.image_model
    image_scores = case_scores(image_model, list(truth))
    return paired_comparison(
        truth,
        (f"{image_model.version} (image score alone)", flag_threshold(image_model), image_scores),
        (history_model.version, history_model.threshold, history_scores(history_model, image_scores)),
    )


def history_model(model_version, *, start=None, end=None, clinic_id=None) -> dict:
    """The history + image logistic regression on `model_version`'s scores, beside the image score
    alone on the same cases; `{"needed", "have"}` only until enough confirmed cases exist. Its
    `threshold` flags, out of fold, as many lab-positive cases as the image score does at its own.
    The fit (scikit-learn) is kept in the figure store, so an unchanged history is fitted once."""
    truth = confirmed_truth(start=start, end=end, clinic_id=clinic_id)
    scores = case_scores(model_version, list(truth))
    cases = (
        lab_confirmed_cases(start=start, end=end, clinic_id=clinic_id)
        .filter(pk__in=[pk for pk in truth if scores.get(pk) is not None])
        .select_related(Case.booking_path("clinic"))
        .prefetch_related("photos")
        .order_by("pk")
    )
    needed = settings.HISTORY_MODEL_MIN_CONFIRMED_CASES
    cases = list(cases)
    labels = np.array([truth[case.pk][0] for case in cases], dtype=bool)
    if len(cases) < needed or labels.sum() < 2 or (~labels).sum() < 2:
        return {"needed": needed, "have": len(cases), "fitted": False}
    features = [history_features(case, scores[case.pk]) for case in cases]
    fit = stored(fit_history_model, features, labels, list(HISTORY_FEATURES))
    image_only = np.array([scores[case.pk] for case in cases])
    image_flags_positives = int((image_only[labels] >= flag_threshold(model_version)).sum())
    return {
        **fit,
        "needed": needed,
        "have": len(cases),
        "fitted": True,
        "image_only_auc": roc_auc(labels, image_only),
        "threshold": threshold_flagging(labels, fit["oof_probabilities"], image_flags_positives),
        "case_ids": [case.pk for case in cases],
    }


def _summary(values) -> dict:
    if len(values) == 0:
        return {"n": 0, "median": float("nan"), "q1": float("nan"), "q3": float("nan")}
    q1, median, q3 = np.quantile(values, [0.25, 0.5, 0.75])
    return {"n": int(len(values)), "median": float(median), "q1": float(q1), "q3": float(q3)}


def json_ready(value):
    """NaN and infinity become null and numpy numbers plain ones, so the JSON stays standard."""
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
