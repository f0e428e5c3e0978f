"""Plots of scores (ROC, confusion, calibration, score histograms) that the portal's charts and the
research commands share; each helper writes a PNG to a path or a binary file object."""

from __future__ import annotations

from pathlib import Path

import numpy as np


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


def plot_score_distribution(
    groups: list[tuple[str, np.ndarray]], threshold: float, path, title: str, bins: int = 20
) -> None:
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
