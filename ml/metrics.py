"""Binary classification metrics, operating-point selection and bootstrap confidence intervals."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

METRIC_NAMES = ("auc", "accuracy", "precision", "recall", "f1", "sensitivity", "specificity")


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (ties count 1/2), by the rank-sum (Mann-Whitney) identity with
    average ranks for ties, which equals scikit-learn's `roc_auc_score` without importing it (the
    staff pages compute this in the web process); NaN if only one class is present, as can happen
    in a bootstrap resample, where scikit-learn would raise."""
    positive = np.asarray(labels).astype(bool)
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, tie_group, tie_counts = np.unique(np.asarray(scores, dtype=float), return_inverse=True, return_counts=True)
    average_ranks = np.cumsum(tie_counts) - (tie_counts - 1) / 2
    rank_sum = float(average_ranks[tie_group.ravel()][positive].sum())
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def triage_calls(labels, scores, threshold: float, assessable=None) -> np.ndarray:
    """1 where a photo counts as a positive call. An assessable photo is a positive call when its
    score reaches the threshold. A not-assessable photo flags nothing but goes to a clinician with
    a retake request: an mpox one counts as caught (not missed), any other one as not flagged."""
    labels = np.asarray(labels).astype(int)
    calls = (np.asarray(scores, dtype=float) >= threshold).astype(int)
    if assessable is None:
        return calls
    assessable = np.asarray(assessable, dtype=bool)
    return np.where(assessable, calls, labels)


def binary_metrics(labels, scores, threshold: float, assessable=None) -> dict[str, float]:
    """AUC (over assessable photos) and the confusion-matrix metrics of :func:`triage_calls`;
    recall == sensitivity. ``assessable`` None = all assessable."""
    labels = np.asarray(labels).astype(int)
    (tn, fp), (fn, tp) = confusion_of_calls(labels, triage_calls(labels, scores, threshold, assessable)).tolist()
    judged = np.ones(len(labels), dtype=bool) if assessable is None else np.asarray(assessable, dtype=bool)

    def ratio(a, b):
        return a / b if b else float("nan")

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "auc": roc_auc(labels[judged], np.asarray(scores, dtype=float)[judged]),
        "accuracy": ratio(tp + tn, len(labels)),
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": recall,
        "specificity": ratio(tn, tn + fp),
    }


def confusion(labels, scores, threshold: float) -> np.ndarray:
    """[[tn, fp], [fn, tp]] at ``score >= threshold``."""
    return confusion_of_calls(labels, np.asarray(scores) >= threshold)


def confusion_of_calls(labels, calls) -> np.ndarray:
    """[[tn, fp], [fn, tp]] of 0/1 ``calls``."""
    labels, predicted = np.asarray(labels).astype(int), np.asarray(calls).astype(int)
    return np.array([[((labels == t) & (predicted == p)).sum() for p in (0, 1)] for t in (0, 1)])


def threshold_for_sensitivity(labels, scores, target: float = 0.95) -> float:
    """Highest threshold whose sensitivity (score >= threshold) is at least ``target``."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    positives = np.sort(scores[labels == 1])
    if len(positives) == 0:
        raise ValueError("no positive samples")
    allowed_misses = int(np.floor((1 - target) * len(positives) + 1e-9))
    return float(positives[allowed_misses])


def bootstrap_ci(
    labels,
    scores,
    threshold: float,
    groups=None,
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    assessable=None,
) -> dict[str, list[float]]:
    """Percentile bootstrap CIs for every metric; resamples whole patients when ``groups`` given."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    assessable = np.ones(len(labels), dtype=bool) if assessable is None else np.asarray(assessable, dtype=bool)
    groups = np.asarray(groups) if groups is not None else np.arange(len(labels))
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in METRIC_NAMES}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))])
        for name, value in binary_metrics(labels[idx], scores[idx], threshold, assessable[idx]).items():
            draws[name].append(value)
    alpha = (1 - level) / 2
    return {
        name: [float(np.nanquantile(v, alpha)), float(np.nanquantile(v, 1 - alpha))]
        if np.isfinite(v).any()
        else [float("nan"), float("nan")]
        for name, v in draws.items()
    }


def grouped_bootstrap(statistic, groups, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> list[float]:
    """Percentile CI of ``statistic(indices)`` over resamples of whole groups (patients)."""
    unique, inverse = np.unique(np.asarray(groups), return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    draws = np.array(
        [
            statistic(np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))]))
            for _ in range(n_boot)
        ],
        dtype=float,
    )
    alpha = (1 - level) / 2
    return [float(np.nanquantile(draws, alpha)), float(np.nanquantile(draws, 1 - alpha))]


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) over all thresholds."""
    from sklearn import metrics as sklearn_metrics

    fpr, tpr, _ = sklearn_metrics.roc_curve(
        np.asarray(labels), np.asarray(scores, dtype=float), drop_intermediate=False
    )
    return fpr, tpr


def mean_sd(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            "mean": float(np.nanmean([f[name] for f in per_fold])),
            "sd": float(np.nanstd([f[name] for f in per_fold], ddof=1)) if len(per_fold) > 1 else 0.0,
        }
        for name in per_fold[0]
    }


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (sound at small n and at 0 % or 100 %); NaNs when n == 0."""
    if n == 0:
        return float("nan"), float("nan")
    z = NormalDist().inv_cdf(1 - (1 - level) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def proportion(successes: int, n: int, level: float = 0.95) -> dict:
    """``{"value", "ci95", "successes", "n"}`` with the Wilson interval; value NaN when n == 0."""
    return {
        "value": successes / n if n else float("nan"),
        "ci95": list(wilson_ci(successes, n, level)),
        "successes": int(successes),
        "n": int(n),
    }


def cohen_kappa(a, b) -> float:
    """Cohen's kappa of two raters' yes/no calls on the same cases (as scikit-learn's
    `cohen_kappa_score`): agreement beyond chance; NaN without cases or when chance agreement is certain."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if len(a) == 0:
        return float("nan")
    observed = float((a == b).mean())
    chance = float(a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean()))
    return (observed - chance) / (1 - chance) if chance < 1 else float("nan")


def diagnostic_table(labels, predicted) -> dict:
    """Counts and sensitivity, specificity, PPV and NPV (Wilson 95 % CIs) of yes/no calls."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(predicted).astype(bool)
    tp, fp = int((labels & predicted).sum()), int((~labels & predicted).sum())
    fn, tn = int((labels & ~predicted).sum()), int((~labels & ~predicted).sum())
    return {
        "n": tp + fp + fn + tn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "sensitivity": proportion(tp, tp + fn),
        "specificity": proportion(tn, tn + fp),
        "ppv": proportion(tp, tp + fp),
        "npv": proportion(tn, tn + fn),
    }


def _resampled_aucs(labels: np.ndarray, scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """AUC of every resample (rows of ``idx``) at once, by the rank-sum (Mann-Whitney) identity with
    average ranks for ties, which equals scikit-learn's AUC; NaN where a resample has one class."""
    from scipy.stats import rankdata

    ranks = rankdata(scores[idx], axis=1)
    positive = labels[idx].astype(bool)
    n_pos = positive.sum(axis=1)
    n_neg = idx.shape[1] - n_pos
    with np.errstate(invalid="ignore", divide="ignore"):
        aucs = ((ranks * positive).sum(axis=1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return np.where((n_pos > 0) & (n_neg > 0), aucs, np.nan)


def paired_auc_difference(labels, scores_a, scores_b, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """AUC(b) - AUC(a) on the same cases, with a percentile bootstrap CI over resampled cases
    (both models resampled together, so the pairing is kept)."""
    labels = np.asarray(labels).astype(int)
    scores_a, scores_b = np.asarray(scores_a, dtype=float), np.asarray(scores_b, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(labels), (n_boot, len(labels)))
    draws = _resampled_aucs(labels, scores_b, idx) - _resampled_aucs(labels, scores_a, idx)
    finite = draws[np.isfinite(draws)]
    alpha = (1 - level) / 2
    ci = (
        [float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha))]
        if len(finite)
        else [float("nan")] * 2
    )
    auc_a, auc_b = roc_auc(labels, scores_a), roc_auc(labels, scores_b)
    return {"auc_a": auc_a, "auc_b": auc_b, "difference": auc_b - auc_a, "ci95": ci, "n_boot": n_boot}


def calibration_bins(labels, scores, n_bins: int) -> list[dict]:
    """Equal-count (quantile) bins as scikit-learn's CalibrationDisplay draws them with
    ``strategy="quantile"``: per non-empty bin the mean score, the observed share positive and n."""
    labels, scores = np.asarray(labels).astype(float), np.asarray(scores, dtype=float)
    edges = np.percentile(scores, np.linspace(0, 100, n_bins + 1))
    bin_ids = np.searchsorted(edges[1:-1], scores)
    rows = []
    for b in range(n_bins):
        members = bin_ids == b
        if members.any():
            rows.append(
                {
                    "mean_score": float(scores[members].mean()),
                    "observed": float(labels[members].mean()),
                    "n": int(members.sum()),
                }
            )
    return rows
