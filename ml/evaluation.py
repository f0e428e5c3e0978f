"""Scoring a labelled folder with a checkpoint (whole photo, automatic ROI or given boxes) and plots
(each plot helper writes a PNG to a path or a binary file object)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .data import Sample
from .inference import LesionModel
from .metrics import binary_metrics, bootstrap_ci
from .preprocess import load_image
from .roi import clamp_box, iou

ROI_MODES = ("none", "auto", "boxes")


def score_samples(model: LesionModel, samples: list[Sample], roi_mode: str, log,
                  batch_size: int = 16) -> tuple[np.ndarray, list]:
    """P(positive) per sample and the box each was scored on (None = whole photo)."""
    scores, used = [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = [load_image(s.path) for s in chunk]
        if roi_mode == "auto":
            rois = model.auto_rois(images)
        elif roi_mode == "boxes":
            rois = [clamp_box(s.box, im.size) if s.box else None for s, im in zip(chunk, images)]
        else:
            rois = [None] * len(images)
        scores.extend(model.predict_proba(images, rois).tolist())
        used.extend(rois)
        log(f"  scored {min(start + batch_size, len(samples))}/{len(samples)}")
    return np.array(scores), used


def evaluation_report(labels, scores, threshold: float, groups=None, seed: int = 0) -> dict:
    """The ``evaluate`` JSON: metric numbers, threshold, n and ``ci95`` per metric."""
    report = binary_metrics(labels, scores, threshold)
    report.update(threshold=float(threshold), n=int(len(labels)))
    report["ci95"] = bootstrap_ci(labels, scores, threshold, groups=groups, seed=seed)
    return report


def roi_iou_summary(samples: list[Sample], used: list) -> dict | None:
    pairs = [(s.box, box) for s, box in zip(samples, used) if s.box is not None]
    if not pairs:
        return None
    ious = np.array([iou(true, found) if found else 0.0 for true, found in pairs])
    return {"mean_iou": float(ious.mean()), "median_iou": float(np.median(ious)),
            "iou_at_least_0.5": float((ious >= 0.5).mean()), "n": len(ious)}


def write_details(path: Path, samples: list[Sample], scores, used) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "patient_id", "label", "score", "roi", "true_box", "iou"])
        for s, score, box in zip(samples, scores, used):
            overlap = iou(s.box, box) if s.box and box else ""
            writer.writerow([s.path, s.patient_id, s.label, f"{score:.6f}",
                             " ".join(map(str, box)) if box else "",
                             " ".join(map(str, s.box)) if s.box else "", overlap])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    return plt


def plot_roc(curves: list[tuple[str, np.ndarray, np.ndarray]], path, title: str) -> None:
    """``curves``: (label, y_true, scores) per curve, drawn by scikit-learn's RocCurveDisplay."""
    from sklearn.metrics import RocCurveDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for label, y, s in curves:
        RocCurveDisplay.from_predictions(y, s, name=label, ax=ax, plot_chance_level=label == curves[-1][0])
    ax.set(xlabel="1 - specificity", ylabel="sensitivity")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_confusion(matrix: np.ndarray, class_names, path: Path, title: str) -> None:
    """The confusion matrix (rows true, columns predicted) by scikit-learn's ConfusionMatrixDisplay."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    ConfusionMatrixDisplay(matrix, display_labels=list(class_names)).plot(ax=ax, cmap="Blues", colorbar=False)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_calibration(labels: np.ndarray, scores: np.ndarray, path, title: str, n_bins: int = 10) -> None:
    """Reliability diagram (predicted probability against observed share of mpox) by scikit-learn's
    CalibrationDisplay; quantile bins, so each point holds about the same number of photos."""
    from sklearn.calibration import CalibrationDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    CalibrationDisplay.from_predictions(labels, scores, n_bins=n_bins, strategy="quantile", ax=ax, name="model")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_score_distribution(groups: list[tuple[str, np.ndarray]], threshold: float, path, title: str,
                            bins: int = 20) -> None:
    """Histograms of the scores of each group (e.g. lab-positive, lab-negative) on [0, 1], with the
    decision threshold as a vertical line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    edges = np.linspace(0, 1, bins + 1)
    for label, scores in groups:
        ax.hist(np.asarray(scores, dtype=float), bins=edges, alpha=0.6, label=f"{label} (n={len(scores)})")
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:.3f}")
    ax.set(xlabel="model score", ylabel="cases", xlim=(0, 1))
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
