"""Scoring a labelled folder with a checkpoint (whole photo, automatic ROI or given boxes) and plots
(each plot helper writes a PNG to a path or a binary file object)."""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import FolderScan, Sample
from .inference import LesionModel
from .metrics import binary_metrics, bootstrap_ci
from .preprocess import load_image
from .boxes import clamp_box, iou

ROI_MODES = ("none", "auto", "boxes")
# The evaluation never shows heatmaps: keep them (and their cost) small.
HEATMAP_SIDE = 32
# How the triage counts a photo the model judged not assessable (printed and in docs/models.md).
COUNTING_RULE = ("sensitivity counts an assessable mpox photo below the threshold as missed and a "
                 "not-assessable one as sent to a clinician (not missed); specificity counts a "
                 "not-assessable non-mpox photo as not flagged; AUC uses assessable photos only")


@dataclass
class Scored:
    """Per read sample: score, whether the model judged it assessable (and why not), box used."""
    scores: np.ndarray
    assessable: np.ndarray
    reasons: list[str]
    used: list


def score_samples(model: LesionModel, samples: list[Sample], roi_mode: str, log,
                  batch_size: int = 16) -> Scored:
    """Analyses every sample as the worker does (``analyse_batch``), with the box of ``roi_mode``:
    "auto" leaves the box to the model (``model.auto_roi`` must be on), "boxes" uses the CSV box
    (whole photo where none), "none" the whole photo (``model.auto_roi`` must be off)."""
    scores, assessable, reasons, used = [], [], [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        images = [load_image(s.path) for s in chunk]
        if roi_mode == "boxes":
            rois = [clamp_box(s.box, im.size) if s.box else None for s, im in zip(chunk, images)]
        else:
            rois = [None] * len(images)
        for analysis in model.analyse_batch(images, rois, heatmap_max_side=HEATMAP_SIDE):
            scores.append(analysis.probability)
            assessable.append(analysis.assessable)
            reasons.append(analysis.reason)
            used.append(analysis.roi)
        log(f"  scored {min(start + batch_size, len(samples))}/{len(samples)}")
    return Scored(np.array(scores, dtype=float), np.array(assessable, dtype=bool), reasons, used)


def class_folders(sample_path: Path, data_dir: Path) -> list[str]:
    """``non_mpox/healthy/x.jpg`` -> ["non_mpox", "non_mpox/healthy"]: every folder it counts in."""
    parts = sample_path.relative_to(data_dir).parts[:-1]
    return ["/".join(parts[:k]) for k in range(1, len(parts) + 1)]


def _count_share(mask: np.ndarray) -> dict:
    return {"n": int(len(mask)), "count": int(mask.sum()),
            "share": float(mask.mean()) if len(mask) else None}


def evaluation_report(folder: FolderScan, data_dir: Path, scored: Scored, threshold: float,
                      class_names, seed: int = 0) -> dict:
    """The ``evaluate`` JSON: metric numbers, threshold, n and ``ci95`` per metric (see
    ``COUNTING_RULE``), the files read and skipped, not-assessable counts and flag rates."""
    samples = folder.samples
    labels = np.array([s.label for s in samples])
    groups = [s.patient_id for s in samples]
    report = binary_metrics(labels, scored.scores, threshold, scored.assessable)
    report.update(threshold=float(threshold), n=int(len(labels)))
    report["ci95"] = bootstrap_ci(labels, scored.scores, threshold, groups=groups, seed=seed,
                                  assessable=scored.assessable)
    report["counting_rule"] = COUNTING_RULE
    judged = scored.assessable
    report["assessable_only"] = {
        "n": int(judged.sum()),
        **(binary_metrics(labels[judged], scored.scores[judged], threshold) if judged.any() else {}),
    }
    report.update(
        n_files=folder.n_files, n_read=len(samples),
        skipped=[{"path": s.path.relative_to(data_dir).as_posix(), "reason": s.reason} for s in folder.skipped])
    report["not_assessable"] = {
        **_count_share(~judged),
        "by_class": {name: _count_share(~judged[labels == k]) for k, name in enumerate(class_names)},
    }
    flagged = judged & (scored.scores >= threshold)
    by_folder: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        for name in class_folders(sample.path, data_dir):
            by_folder.setdefault(name, []).append(i)
    report["flag_rate_by_class"] = {name: {"n": len(idx), "flagged": int(flagged[idx].sum()),
                                           "share": float(flagged[idx].mean())}
                                    for name, idx in sorted(by_folder.items())}
    return report


def roi_iou_summary(samples: list[Sample], used: list) -> dict | None:
    pairs = [(s.box, box) for s, box in zip(samples, used) if s.box is not None]
    if not pairs:
        return None
    ious = np.array([iou(true, found) if found else 0.0 for true, found in pairs])
    return {"mean_iou": float(ious.mean()), "median_iou": float(np.median(ious)),
            "iou_at_least_0.5": float((ious >= 0.5).mean()), "n": len(ious)}


DETAIL_COLUMNS = ("path", "label", "score", "assessable", "reason", "patient_id", "roi", "true_box", "iou")


def write_details(path: Path, folder: FolderScan, data_dir: Path, scored: Scored, class_names) -> None:
    """One row per file, read or skipped (a skipped file's reason starts with "not read: ")."""
    def box_text(box):
        return " ".join(map(str, box)) if box else ""

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DETAIL_COLUMNS)
        for s, score, judged, reason, box in zip(folder.samples, scored.scores, scored.assessable,
                                                 scored.reasons, scored.used):
            overlap = f"{iou(s.box, box):.4f}" if s.box and box else ""
            writer.writerow([s.path.relative_to(data_dir).as_posix(), class_names[s.label], f"{score:.6f}",
                             int(judged), reason, s.patient_id, box_text(box), box_text(s.box), overlap])
        for skipped in folder.skipped:
            relative = skipped.path.relative_to(data_dir)
            writer.writerow([relative.as_posix(), relative.parts[0], "", "", f"not read: {skipped.reason}",
                             "", "", "", ""])


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
