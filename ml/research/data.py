"""Datasets as folders: ``DIR/<class>/**/image`` plus an optional CSV of patient ids and ROI boxes.

Every file under a class folder is read by its content, whatever its name (``.jfif``, ``.jpe``,
upper case, no extension, HEIC/HEIF): :func:`scan` returns the images and, with the reason, every
file that is not one. ``train``, ``cv``, ``evaluate`` and ``scenes`` all read folders with it.

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
from PIL import Image, UnidentifiedImageError

from ..checkpoint import CLASS_NAMES
from ..preprocess import Box, open_image

CSV_NAME = "dataset.csv"
CSV_COLUMNS = ("path", "patient_id", "x0", "y0", "x1", "y1")


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int  # index into class names; 1 = positive (mpox)
    patient_id: str
    box: Box | None = None


@dataclass(frozen=True)
class Skipped:
    path: Path
    reason: str


@dataclass(frozen=True)
class FolderScan:
    samples: list[Sample]  # the files that decode as images
    skipped: list[Skipped]  # every other file under the class folders, with the reason
    n_files: int  # all files under the class folders (samples + skipped)


def unreadable_reason(path: Path) -> str:
    """ "" when ``path`` decodes as an image (by content, any name), else why not."""
    if path.stat().st_size == 0:
        return "empty file"
    try:
        with open_image(path) as image:
            image.draft("RGB", (64, 64))  # JPEG: decode at 1/8 scale; still reads every byte
            image.load()
    except UnidentifiedImageError:
        return "not an image: content matches no image format this installation reads"
    except Image.DecompressionBombError as error:
        return f"too many pixels: {error}"
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        return f"damaged image: {error}"
    return ""


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
            writer.writerow(
                [s.path.relative_to(data_dir).as_posix(), s.patient_id, *(s.box if s.box else ("", "", "", ""))]
            )


def scan(
    data_dir: str | Path, csv_path: str | Path | None = None, class_names: tuple[str, ...] = CLASS_NAMES
) -> FolderScan:
    """Every file under ``data_dir/<class>/`` (recursively), labelled by class folder and read by
    content: images become samples, anything else is listed as skipped with the reason."""
    data_dir = Path(data_dir)
    csv_path = Path(csv_path) if csv_path else data_dir / CSV_NAME
    listed = read_csv(csv_path, data_dir) if csv_path.is_file() else {}
    samples, skipped, n_files = [], [], 0
    for label, name in enumerate(class_names):
        folder = data_dir / name
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{data_dir} needs one subfolder per class: missing {name}/ (expected {', '.join(class_names)})"
            )
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.resolve() != csv_path.resolve()):
            n_files += 1
            reason = unreadable_reason(path)
            if reason:
                skipped.append(Skipped(path, reason))
                continue
            patient, box = listed.get(path.resolve(), (None, None))
            samples.append(Sample(path, label, patient or patient_id_from_name(path), box))
    if not samples:
        raise FileNotFoundError(
            f"no readable images under {data_dir}/{{{','.join(class_names)}}} ({n_files} files, none an image)"
        )
    return FolderScan(samples, skipped, n_files)


def discover(
    data_dir: str | Path, csv_path: str | Path | None = None, class_names: tuple[str, ...] = CLASS_NAMES
) -> list[Sample]:
    """The images of :func:`scan` (for callers that only need those)."""
    return scan(data_dir, csv_path, class_names).samples


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
