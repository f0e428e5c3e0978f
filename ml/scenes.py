"""Synthetic uncropped photos for measuring the lesion ROI: each lesion crop is placed into a larger
procedural scene (skin-tone or fabric/bedding background), covering 10-50 % of the frame's area at
a random position; the true box goes into ``OUT/dataset.csv`` (see :mod:`ml.data`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .checkpoint import read_checkpoint
from .data import CSV_NAME, Sample, discover, write_csv
from .preprocess import load_image

# Approximate skin tones across Fitzpatrick types I-VI (RGB).
SKIN_TONES = [(241, 206, 180), (228, 185, 152), (206, 150, 112), (170, 116, 80), (120, 78, 52),
              (82, 54, 38)]
AREA_FRACTION = (0.10, 0.50)
SCENE_SIDE = (360, 720)


def _smooth_noise(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [-1, 1], shape (height, width)."""
    coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def skin_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    tone = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))], dtype=np.float32)
    tone *= rng.uniform(0.9, 1.1, size=3)
    shading = 1 + 0.18 * _smooth_noise(rng, width, height, 3) + 0.06 * _smooth_noise(rng, width, height, 12)
    pores = rng.normal(0, 5, size=(height, width, 1))
    return tone * shading[..., None] + pores


def fabric_background(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    base = rng.uniform(40, 235, size=3).astype(np.float32)
    second = np.clip(base + rng.uniform(-70, 70, size=3), 0, 255)
    period = rng.uniform(8, 60)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:      # stripes
        angle = rng.uniform(0, np.pi)
        weight = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi) > 0)
    elif kind == 1:    # checks
        weight = ((xx // period + yy // period) % 2).astype(bool)
    else:              # plain weave
        weight = np.zeros((height, width), dtype=bool)
    weight = weight.astype(np.float32)[..., None]
    cloth = base * (1 - weight) + second * weight
    folds = 1 + 0.25 * _smooth_noise(rng, width, height, 4)
    weave = rng.normal(0, 8, size=(height, width, 1))
    return cloth * folds[..., None] + weave


def make_scene(lesion: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """Places ``lesion`` into a new scene; returns (scene, true box)."""
    width, height = (int(v) for v in rng.integers(*SCENE_SIDE, size=2))
    background = (skin_background if rng.random() < 0.5 else fabric_background)(rng, width, height)
    scene = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    scene = scene.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))
    area = rng.uniform(*AREA_FRACTION) * width * height
    aspect = lesion.width / lesion.height
    w = int(min(np.sqrt(area * aspect), width))
    h = int(min(w / aspect, height))
    x0, y0 = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    scene.paste(lesion.resize((w, h), Image.Resampling.BILINEAR), (x0, y0))
    return scene, (x0, y0, x0 + w, y0 + h)


def build_scenes(data_dir: Path, out_dir: Path, seed: int = 0, csv_path: Path | None = None,
                 per_image: int = 1, exclude_trained_by: Path | None = None, log=print) -> list[Sample]:
    """Builds OUT/<class>/.../<stem>_s<k>.jpg and OUT/dataset.csv; source boxes (if any) are cropped first."""
    samples = discover(data_dir, csv_path)
    if exclude_trained_by is not None:
        trained = set(read_checkpoint(exclude_trained_by)[0].get("training_patients", []))
        if not trained:
            raise SystemExit(f"{exclude_trained_by} records no training_patients")
        samples = [s for s in samples if s.patient_id not in trained]
        log(f"{len(samples)} images of patients {exclude_trained_by.name} never trained on")
    rng = np.random.default_rng(seed)
    scenes = []
    for sample in samples:
        lesion = load_image(sample.path)
        if sample.box:
            lesion = lesion.crop(sample.box)
        folder = out_dir / sample.path.relative_to(data_dir).parent
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_image):
            scene, box = make_scene(lesion, rng)
            path = folder / f"{sample.path.stem}_s{k}.jpg"
            scene.save(path, quality=90)
            scenes.append(Sample(path, sample.label, sample.patient_id, box))
    write_csv(out_dir / CSV_NAME, out_dir, scenes)
    log(f"wrote {len(scenes)} scenes and {out_dir / CSV_NAME}")
    return scenes
