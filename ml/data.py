"""Datasets as folders: ``DIR/<class>/**/image`` plus an optional CSV of patient ids and ROI boxes.

CSV (default ``DIR/dataset.csv``, or ``--csv``): header ``path,patient_id,x0,y0,x1,y1``; ``path``
relative to DIR (e.g. ``mpox/a/M01_01.jpg``); ``patient_id`` may be empty; the four box columns
(original-image pixels after EXIF orientation, x1/y1 exclusive) may be empty or absent. Images the
CSV does not list get patient id = file-name prefix before the first ``_`` (or the file stem) and
no box. Patient ids are what every split groups by.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import CLASS_NAMES
from .preprocess import Box

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
CSV_NAME = "dataset.csv"
CSV_COLUMNS = ("path", "patient_id", "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int              # index into class names; 1 = positive (mpox)
    patient_id: str
    box: Box | None = None


def patient_id_from_name(path: Path) -> str:
    prefix = path.stem.split("_", 1)[0]
    return prefix or path.stem


def read_csv(csv_path: Path, data_dir: Path) -> dict[Path, tuple[str | None, Box | None]]:
    """path -> (patient_id or None, box or None), paths resolved against ``data_dir``."""
    rows = {}
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "path" not in reader.fieldnames:
            raise ValueError(f"{csv_path}: needs a header with at least 'path' ({','.join(CSV_COLUMNS)})")
        for row in reader:
            coords = [(row.get(k) or "").strip() for k in ("x0", "y0", "x1", "y1")]
            box = tuple(int(float(c)) for c in coords) if all(coords) else None
            patient = (row.get("patient_id") or "").strip() or None
            rows[(data_dir / row["path"]).resolve()] = (patient, box)
    return rows


def write_csv(csv_path: Path, data_dir: Path, samples: list[Sample]) -> None:
    with open(csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for s in samples:
            writer.writerow([s.path.relative_to(data_dir).as_posix(), s.patient_id,
                             *(s.box if s.box else ("", "", "", ""))])


def discover(data_dir: str | Path, csv_path: str | Path | None = None,
             class_names: tuple[str, ...] = CLASS_NAMES) -> list[Sample]:
    """All images under ``data_dir/<class>/`` (recursively), labelled by class folder."""
    data_dir = Path(data_dir)
    csv_path = Path(csv_path) if csv_path else data_dir / CSV_NAME
    listed = read_csv(csv_path, data_dir) if csv_path.is_file() else {}
    samples = []
    for label, name in enumerate(class_names):
        folder = data_dir / name
        if not folder.is_dir():
            raise FileNotFoundError(f"{data_dir} needs one subfolder per class: missing {name}/ "
                                    f"(expected {', '.join(class_names)})")
        for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
                           and p.is_file()):
            patient, box = listed.get(path.resolve(), (None, None))
            samples.append(Sample(path, label, patient or patient_id_from_name(path), box))
    if not samples:
        raise FileNotFoundError(f"no images found under {data_dir}/{{{','.join(class_names)}}}")
    return samples


def grouped_folds(labels, groups, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified k-fold over patients: (train_idx, test_idx) per fold, no patient in two folds."""
    from sklearn.model_selection import StratifiedGroupKFold

    labels, groups = np.asarray(labels), np.asarray(groups)
    n_groups = len(set(groups.tolist()))
    if n_groups < n_folds:
        raise ValueError(f"{n_groups} patients cannot fill {n_folds} folds")
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return list(splitter.split(np.zeros(len(labels)), labels, groups))


def grouped_holdout(labels, groups, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_idx, val_idx): about ``fraction`` of patients held out, stratified by label."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    fewest = min(len(set(groups[labels == label].tolist())) for label in set(labels.tolist()))
    n_folds = max(2, min(round(1 / fraction), fewest))
    return grouped_folds(labels, groups, n_folds, seed)[0]
