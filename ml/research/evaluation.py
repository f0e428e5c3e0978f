"""Scoring a labelled folder with a checkpoint (whole photo, automatic ROI or given boxes)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..boxes import clamp_box, iou
from ..inference import LesionModel
from ..metrics import binary_metrics, bootstrap_ci
from ..preprocess import load_image
from .data import FolderScan, Sample

# The evaluation never shows heatmaps: keep them (and their cost) small.
HEATMAP_SIDE = 32
# How the triage counts a photo the model judged not assessable (printed and in docs/models.md).
COUNTING_RULE = (
    "sensitivity counts an assessable mpox photo below the threshold as missed and a "
    "not-assessable one as sent to a clinician (not missed); specificity counts a "
    "not-assessable non-mpox photo as not flagged; AUC uses assessable photos only"
)


@dataclass
class Scored:
    """Per read sample: score, whether the model judged it assessable (and why not), box used."""

    scores: np.ndarray
    assessable: np.ndarray
    reasons: list[str]
    used: list


def score_samples(model: LesionModel, samples: list[Sample], roi_mode: str, log, batch_size: int = 16) -> Scored:
    """Analyses every sample as the worker does (``analyse_batch``), with the box of ``roi_mode``:
    "auto" leaves the box to the model (``model.auto_roi`` must be on), "boxes" uses the CSV box
    (whole photo where none), "none" the whole photo (``model.auto_roi`` must be off)."""
    scores, assessable, reasons, used = [], [], [], []
    for start in range(0, len(samples), batch_size):
        chunk = samples[start : start + batch_size]
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
    return {"n": int(len(mask)), "count": int(mask.sum()), "share": float(mask.mean()) if len(mask) else None}


def evaluation_report(
    folder: FolderScan, data_dir: Path, scored: Scored, threshold: float, class_names, seed: int = 0
) -> dict:
    """The ``evaluate`` JSON: metric numbers, threshold, n and ``ci95`` per metric (see
    ``COUNTING_RULE``), the files read and skipped, not-assessable counts and flag rates."""
    samples = folder.samples
    labels = np.array([s.label for s in samples])
    groups = [s.patient_id for s in samples]
    report = binary_metrics(labels, scored.scores, threshold, scored.assessable)
    report.update(threshold=float(threshold), n=int(len(labels)))
    report["ci95"] = bootstrap_ci(
        labels, scored.scores, threshold, groups=groups, seed=seed, assessable=scored.assessable
    )
    report["counting_rule"] = COUNTING_RULE
    judged = scored.assessable
    report["assessable_only"] = {
        "n": int(judged.sum()),
        **(binary_metrics(labels[judged], scored.scores[judged], threshold) if judged.any() else {}),
    }
    report.update(
        n_files=folder.n_files,
        n_read=len(samples),
        skipped=[{"path": s.path.relative_to(data_dir).as_posix(), "reason": s.reason} for s in folder.skipped],
    )
    report["not_assessable"] = {
        **_count_share(~judged),
        "by_class": {name: _count_share(~judged[labels == k]) for k, name in enumerate(class_names)},
    }
    flagged = judged & (scored.scores >= threshold)
    by_folder: dict[str, list[int]] = {}
    for i, sample in enumerate(samples):
        for name in class_folders(sample.path, data_dir):
            by_folder.setdefault(name, []).append(i)
    report["flag_rate_by_class"] = {
        name: {"n": len(idx), "flagged": int(flagged[idx].sum()), "share": float(flagged[idx].mean())}
        for name, idx in sorted(by_folder.items())
    }
    return report


def roi_iou_summary(samples: list[Sample], used: list) -> dict | None:
    pairs = [(s.box, box) for s, box in zip(samples, used) if s.box is not None]
    if not pairs:
        return None
    ious = np.array([iou(true, found) if found else 0.0 for true, found in pairs])
    return {
        "mean_iou": float(ious.mean()),
        "median_iou": float(np.median(ious)),
        "iou_at_least_0.5": float((ious >= 0.5).mean()),
        "n": len(ious),
    }


DETAIL_COLUMNS = ("path", "label", "score", "assessable", "reason", "patient_id", "roi", "true_box", "iou")


def write_details(path: Path, folder: FolderScan, data_dir: Path, scored: Scored, class_names) -> None:
    """One row per file, read or skipped (a skipped file's reason starts with "not read: ")."""

    def box_text(box):
        return " ".join(map(str, box)) if box else ""

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DETAIL_COLUMNS)
        for s, score, judged, reason, box in zip(
            folder.samples, scored.scores, scored.assessable, scored.reasons, scored.used
        ):
            overlap = f"{iou(s.box, box):.4f}" if s.box and box else ""
            writer.writerow(
                [
                    s.path.relative_to(data_dir).as_posix(),
                    class_names[s.label],
                    f"{score:.6f}",
                    int(judged),
                    reason,
                    s.patient_id,
                    box_text(box),
                    box_text(s.box),
                    overlap,
                ]
            )
        for skipped in folder.skipped:
            relative = skipped.path.relative_to(data_dir)
            writer.writerow(
                [relative.as_posix(), relative.parts[0], "", "", f"not read: {skipped.reason}", "", "", "", ""]
            )
