"""Binary classification metrics, operating-point selection and bootstrap confidence intervals."""
from __future__ import annotations

import numpy as np

METRIC_NAMES = ("auc", "accuracy", "precision", "recall", "f1", "sensitivity", "specificity")


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count 1/2); NaN if only one class present."""
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    for start, count in zip(first, counts):
        ranks[order[start:start + count]] = start + (count + 1) / 2
    return float((ranks[labels == 1].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def binary_metrics(labels, scores, threshold: float) -> dict[str, float]:
    """AUC and the confusion-matrix metrics at ``score >= threshold``; recall == sensitivity."""
    labels = np.asarray(labels).astype(int)
    predicted = (np.asarray(scores) >= threshold).astype(int)
    tp = int(((predicted == 1) & (labels == 1)).sum())
    tn = int(((predicted == 0) & (labels == 0)).sum())
    fp = int(((predicted == 1) & (labels == 0)).sum())
    fn = int(((predicted == 0) & (labels == 1)).sum())

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
    labels, scores = np.asarray(labels), np.asarray(scores, dtype=float)
    thresholds = np.r_[np.inf, np.unique(scores)[::-1]]
    tpr = [(scores[labels == 1] >= t).mean() for t in thresholds]
    fpr = [(scores[labels == 0] >= t).mean() for t in thresholds]
    return np.array(fpr), np.array(tpr)


def mean_sd(per_fold: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    return {name: {"mean": float(np.nanmean([f[name] for f in per_fold])),
                   "sd": float(np.nanstd([f[name] for f in per_fold], ddof=1))
                   if len(per_fold) > 1 else 0.0}
            for name in per_fold[0]}
