"""Binary classification metrics, operating-point selection and bootstrap confidence intervals."""
from __future__ import annotations

import numpy as np
from sklearn import metrics as sklearn_metrics

METRIC_NAMES = ("auc", "accuracy", "precision", "recall", "f1", "sensitivity", "specificity")


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (ties count 1/2); NaN if only one class is present, as can happen
    in a bootstrap resample, where scikit-learn would raise."""
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return float("nan")
    return float(sklearn_metrics.roc_auc_score(labels, np.asarray(scores, dtype=float)))


def binary_metrics(labels, scores, threshold: float) -> dict[str, float]:
    """AUC and the confusion-matrix metrics at ``score >= threshold``; recall == sensitivity."""
    (tn, fp), (fn, tp) = confusion(labels, scores, threshold).tolist()

    def ratio(a, b):
        return a / b if b else float("nan")

    precision, recall = ratio(tp, tp + fp), ratio(tp, tp + fn)
    return {
        "auc": roc_auc(labels, scores),
        "accuracy": ratio(tp + tn, len(labels)),
        "precision": precision,
        "recall": recall,
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "sensitivity": recall,
        "specificity": ratio(tn, tn + fp),
    }


def confusion(labels, scores, threshold: float) -> np.ndarray:
    """[[tn, fp], [fn, tp]]."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    return np.array([[((labels == t) & (predicted == p)).sum() for p in (0, 1)] for t in (0, 1)])


def threshold_for_sensitivity(labels, scores, target: float = 0.95) -> float:
    """Highest threshold whose sensitivity (score >= threshold) is at least ``target``."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    positives = np.sort(scores[labels == 1])
    if len(positives) == 0:
        raise ValueError("no positive samples")
    allowed_misses = int(np.floor((1 - target) * len(positives) + 1e-9))
    return float(positives[allowed_misses])


def bootstrap_ci(labels, scores, threshold: float, groups=None, n_boot: int = 2000,
                 seed: int = 0, level: float = 0.95) -> dict[str, list[float]]:
    """Percentile bootstrap CIs for every metric; resamples whole patients when ``groups`` given."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    groups = np.asarray(groups) if groups is not None else np.arange(len(labels))
    unique, inverse = np.unique(groups, return_inverse=True)
    members = [np.flatnonzero(inverse == g) for g in range(len(unique))]
    rng = np.random.default_rng(seed)
    draws = {name: [] for name in METRIC_NAMES}
    for _ in range(n_boot):
        idx = np.concatenate([members[g] for g in rng.integers(0, len(unique), len(unique))])
        for name, value in binary_metrics(labels[idx], scores[idx], threshold).items():
            draws[name].append(value)
    alpha = (1 - level) / 2
    return {name: [float(np.nanquantile(v, alpha)), float(np.nanquantile(v, 1 - alpha))]
            if np.isfinite(v).any() else [float("nan"), float("nan")] for name, v in draws.items()}


def roc_curve(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) over all thresholds."""
    fpr, tpr, _ = sklearn_metrics.roc_curve(np.asarray(labels), np.asarray(scores, dtype=float),
                                            drop_intermediate=False)
    return fpr, tpr


def mean_sd(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {name: {"mean": float(np.nanmean([f[name] for f in per_fold])),
                   "sd": float(np.nanstd([f[name] for f in per_fold], ddof=1))
                   if len(per_fold) > 1 else 0.0}
            for name in per_fold[0]}
