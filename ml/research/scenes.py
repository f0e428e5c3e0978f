"""Synthetic uncropped photos for measuring the lesion ROI: each lesion crop is placed into a larger
procedural scene; the true box goes into ``OUT/dataset.csv`` (see :mod:`ml.research.data`).

Plain scenes (:func:`make_scene`): skin-tone or fabric background, lesion covering 10-50 % of the
frame. Hard scenes (:func:`make_hard_scene`, ``--hard``): the distractors of real phone photos,
all rendered here (no outside images): fingers, bare or gloved; hair; fabric with prints; further
smaller lesions of the same class; jewellery; cast shadows; a dark object at the edge; the lesion
blended into the skin (no hard crop edge), covering 3-25 % of the frame, then JPEG-compressed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..checkpoint import read_checkpoint
from ..preprocess import load_image
from .data import CSV_NAME, Sample, discover, write_csv

# Approximate skin tones across Fitzpatrick types I-VI (RGB).
SKIN_TONES = [(241, 206, 180), (228, 185, 152), (206, 150, 112), (170, 116, 80), (120, 78, 52), (82, 54, 38)]
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
    if kind == 0:  # stripes
        angle = rng.uniform(0, np.pi)
        weight = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi) > 0
    elif kind == 1:  # checks
        weight = ((xx // period + yy // period) % 2).astype(bool)
    else:  # plain weave
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


HARD_AREA_FRACTION = (0.03, 0.25)
HARD_SCENE_SIDE = (480, 800)
GLOVE_COLOURS = [(70, 110, 205), (112, 84, 170), (28, 28, 34), (228, 228, 232), (232, 212, 172)]
METAL_COLOURS = [(212, 175, 55), (192, 192, 200), (184, 115, 51)]
# Each hard scene draws every distractor with this probability (and at least two of them).
DISTRACTORS = {
    "fingers": 0.6,
    "hair": 0.45,
    "print": 0.45,
    "more_lesions": 0.5,
    "jewellery": 0.4,
    "shadow": 0.5,
    "dark_object": 0.3,
}


def _feather_mask(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """0..1 alpha: opaque centre, soft irregular rim (the lesion photo melts into the skin)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    dx, dy = (xx + 0.5) / width * 2 - 1, (yy + 0.5) / height * 2 - 1
    radius = np.maximum(np.abs(dx), np.abs(dy)) * 0.5 + np.hypot(dx, dy) * 0.5
    radius += 0.08 * _smooth_noise(rng, width, height, 5)
    return np.clip((1.0 - radius) / 0.3, 0, 1)


def _blend(canvas: np.ndarray, patch: np.ndarray, alpha: np.ndarray, x0: int, y0: int) -> None:
    h, w = alpha.shape
    region = canvas[y0 : y0 + h, x0 : x0 + w]
    region[:] = region * (1 - alpha[..., None]) + patch * alpha[..., None]


def _capsule(draw: ImageDraw.ImageDraw, a, b, width: int, fill) -> None:
    draw.line([a, b], fill=fill, width=width)
    for x, y in (a, b):
        draw.ellipse([x - width / 2, y - width / 2, x + width / 2, y + width / 2], fill=fill)


def _layer(canvas: np.ndarray, paint, blur: float = 0.0) -> None:
    """Draws with ``paint(draw)`` onto an RGBA layer and composites it over ``canvas``."""
    height, width = canvas.shape[:2]
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    paint(ImageDraw.Draw(layer))
    if blur:
        layer = layer.filter(ImageFilter.GaussianBlur(blur))
    rgba = np.asarray(layer, dtype=np.float32)
    alpha = rgba[..., 3:] / 255.0
    canvas[:] = canvas * (1 - alpha) + rgba[..., :3] * alpha


def _fingers(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """One to four fingers (gloved, or bare skin of another tone) reaching in from an edge."""
    height, width = canvas.shape[:2]
    gloved = rng.random() < 0.7
    colour = np.array(
        GLOVE_COLOURS[rng.integers(len(GLOVE_COLOURS))] if gloved else SKIN_TONES[rng.integers(len(SKIN_TONES))],
        dtype=float,
    )
    thickness = int(rng.uniform(0.07, 0.13) * min(width, height))
    side = rng.integers(4)
    angle = rng.uniform(-0.5, 0.5) + side * np.pi / 2
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    start_edge = {
        0: (0, rng.uniform(0.1, 0.9) * height),
        1: (rng.uniform(0.1, 0.9) * width, 0),
        2: (width, rng.uniform(0.1, 0.9) * height),
        3: (rng.uniform(0.1, 0.9) * width, height),
    }[side]
    start = np.array(start_edge, dtype=float) - direction * thickness

    def paint(draw):
        for k in range(int(rng.integers(1, 5))):
            base = start + normal * thickness * 1.05 * k
            length = rng.uniform(0.25, 0.5) * min(width, height)
            tip = base + direction * length
            shade = tuple(int(c) for c in np.clip(colour * rng.uniform(0.85, 1.1), 0, 255))
            _capsule(draw, tuple(base), tuple(tip), thickness, shade + (255,))
            highlight = tuple(int(c) for c in np.clip(colour * 1.35 + 40, 0, 255)) + (150,)
            offset = normal * thickness * 0.22
            draw.line(
                [tuple(base + offset), tuple(tip - direction * thickness * 0.3 + offset)],
                fill=highlight,
                width=max(2, thickness // 7),
            )
            if not gloved:  # a fingernail
                nail = tip - direction * thickness * 0.35
                r = thickness * 0.3
                draw.ellipse(
                    [nail[0] - r, nail[1] - r, nail[0] + r, nail[1] + r],
                    fill=tuple(int(c) for c in np.clip(colour * 1.15 + 25, 0, 255)) + (255,),
                )

    _layer(canvas, paint, blur=1.0)


def _hair(canvas: np.ndarray, rng: np.random.Generator) -> None:
    height, width = canvas.shape[:2]
    colour = [(20, 15, 12), (55, 35, 20), (90, 60, 35), (150, 120, 80)][rng.integers(4)]
    flow = rng.uniform(0, np.pi)

    def paint(draw):
        for _ in range(int(rng.integers(30, 160))):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            angle, length = flow + rng.normal(0, 0.4), rng.uniform(0.05, 0.2) * min(width, height)
            bend = rng.normal(0, 0.5)
            points = [
                (x + length * t * np.cos(angle + bend * t), y + length * t * np.sin(angle + bend * t))
                for t in np.linspace(0, 1, 8)
            ]
            draw.line(points, fill=colour + (int(rng.integers(150, 255)),), width=int(rng.integers(1, 3)))

    _layer(canvas, paint, blur=0.4)


def _printed_fabric(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Clothing with a print (dots, flowers, stripes or checks) covering one side of the frame."""
    height, width = canvas.shape[:2]
    cloth = fabric_background(rng, width, height)
    motif = rng.uniform(0, 255, size=3)
    layer = Image.fromarray(np.clip(cloth, 0, 255).astype(np.uint8)).convert("RGBA")
    draw = ImageDraw.Draw(layer)
    spacing = rng.uniform(0.04, 0.12) * min(width, height)
    for cy in np.arange(0, height + spacing, spacing):
        for cx in np.arange((cy // spacing) % 2 * spacing / 2, width + spacing, spacing):
            r = spacing * rng.uniform(0.15, 0.35)
            fill = tuple(int(c) for c in np.clip(motif + rng.normal(0, 25, 3), 0, 255)) + (255,)
            if rng.random() < 0.5:
                draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
            else:  # a five-petal flower
                for petal in range(5):
                    a = petal * 2 * np.pi / 5
                    px, py = cx + r * np.cos(a), cy + r * np.sin(a)
                    draw.ellipse([px - r * 0.6, py - r * 0.6, px + r * 0.6, py + r * 0.6], fill=fill)
    printed = np.asarray(layer.convert("RGB"), dtype=np.float32)
    # the garment's edge: a wavy line across the frame; everything beyond it is cloth
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    distance = (xx - width / 2) * np.cos(angle) + (yy - height / 2) * np.sin(angle)
    edge = rng.uniform(0.2, 0.45) * min(width, height) + 0.05 * min(width, height) * _smooth_noise(
        rng, width, height, 4
    )
    alpha = np.clip((distance - edge) / 3.0, 0, 1)[..., None]
    canvas[:] = canvas * (1 - alpha) + printed * alpha


def _jewellery(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A ring or bracelet (a shiny ellipse) or a chain of beads."""
    height, width = canvas.shape[:2]
    metal = np.array(METAL_COLOURS[rng.integers(len(METAL_COLOURS))], dtype=float)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height

    def paint(draw):
        if rng.random() < 0.5:
            rx, ry = rng.uniform(0.05, 0.2) * width, rng.uniform(0.02, 0.06) * height
            band = max(3, int(rng.uniform(0.01, 0.03) * min(width, height)))
            draw.ellipse(
                [cx - rx, cy - ry, cx + rx, cy + ry], outline=tuple(int(c) for c in metal) + (255,), width=band
            )
            draw.arc([cx - rx, cy - ry, cx + rx, cy + ry], 200, 260, fill=(255, 255, 240, 230), width=max(1, band // 2))
        else:
            angle, bend = rng.uniform(0, np.pi), rng.normal(0, 0.8)
            length = rng.uniform(0.3, 0.8) * min(width, height)
            r = rng.uniform(0.006, 0.015) * min(width, height)
            for t in np.linspace(-0.5, 0.5, int(length / (2.2 * r))):
                x = cx + length * t * np.cos(angle + bend * t)
                y = cy + length * t * np.sin(angle + bend * t)
                draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(c) for c in metal) + (255,))
                draw.ellipse([x - r * 0.4, y - r * 0.6, x, y - r * 0.1], fill=(255, 255, 240, 220))

    _layer(canvas, paint, blur=0.5)


def _shadow(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """A cast shadow (a soft-edged half-plane or blob) darkening part of the frame."""
    height, width = canvas.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    if rng.random() < 0.5:
        angle = rng.uniform(0, 2 * np.pi)
        distance = (xx - width * rng.uniform(0.2, 0.8)) * np.cos(angle) + (
            yy - height * rng.uniform(0.2, 0.8)
        ) * np.sin(angle)
        mask = 1 / (1 + np.exp(-distance / (rng.uniform(0.01, 0.06) * min(width, height))))
    else:
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(0.2, 0.5) * min(width, height)
        mask = np.clip((r - np.hypot(xx - cx, yy - cy)) / (0.3 * r), 0, 1)
    canvas *= (1 - rng.uniform(0.3, 0.65) * mask)[..., None]


def _dark_object(canvas: np.ndarray, rng: np.random.Generator) -> None:
    """Something dark half out of frame at an edge or corner (a phone, a bag, a sleeve)."""
    height, width = canvas.shape[:2]
    cx = width * rng.choice([rng.uniform(-0.1, 0.1), rng.uniform(0.9, 1.1)])
    cy = height * rng.choice([rng.uniform(-0.1, 0.1), rng.uniform(0.9, 1.1), rng.uniform(0.2, 0.8)])
    r = rng.uniform(0.1, 0.25) * min(width, height)
    shade = tuple(int(v) for v in rng.uniform(10, 60, size=3)) + (255,)
    _layer(
        canvas,
        lambda draw: draw.rounded_rectangle([cx - r, cy - r * 0.7, cx + r, cy + r * 0.7], radius=r * 0.3, fill=shade),
        blur=1.5,
    )


def _draw_beside(canvas: np.ndarray, draw, rng: np.random.Generator, box, tries: int = 6) -> None:
    """Draws a distractor that leaves the middle of the lesion box visible (as fingers stretching
    the skin beside a lesion do); gives up after ``tries`` placements."""
    x0, y0, x1, y1 = box
    mx, my = (x1 - x0) // 4, (y1 - y0) // 4
    for _ in range(tries):
        trial = canvas.copy()
        draw(trial, rng)
        middle = np.abs(trial[y0 + my : y1 - my, x0 + mx : x1 - mx] - canvas[y0 + my : y1 - my, x0 + mx : x1 - mx])
        if (middle.max(axis=-1) > 8).mean() < 0.1:
            canvas[:] = trial
            return


def _place(lesion: Image.Image, area: float, width: int, height: int, rng: np.random.Generator):
    aspect = lesion.width / lesion.height
    w = int(min(np.sqrt(area * aspect), width))
    h = int(min(w / aspect, height))
    return w, h, int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))


def make_hard_scene(
    lesion: Image.Image, others: list[Image.Image], rng: np.random.Generator
) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """``lesion`` (the one the true box marks) in a scene with distractors; ``others``: lesions of
    the same class that may appear smaller elsewhere in the frame. Returns (scene, true box)."""
    width, height = (int(v) for v in rng.integers(*HARD_SCENE_SIDE, size=2))
    canvas = skin_background(rng, width, height).astype(np.float32)
    chosen = [name for name, p in DISTRACTORS.items() if rng.random() < p]
    while len(chosen) < 2:
        name = list(DISTRACTORS)[rng.integers(len(DISTRACTORS))]
        chosen += [name] if name not in chosen else []
    if "print" in chosen:
        _printed_fabric(canvas, rng)
    if "hair" in chosen:
        _hair(canvas, rng)

    w, h, x0, y0 = _place(lesion, rng.uniform(*HARD_AREA_FRACTION) * width * height, width, height, rng)
    if "more_lesions" in chosen and others:
        for other in rng.choice(len(others), size=min(len(others), int(rng.integers(1, 4))), replace=False):
            small = others[int(other)]
            sw, sh, sx, sy = _place(small, rng.uniform(0.2, 0.6) * w * h, width, height, rng)
            if sx + sw < x0 or sx > x0 + w or sy + sh < y0 or sy > y0 + h:  # beside, not on, the main lesion
                patch = np.asarray(small.resize((sw, sh), Image.Resampling.BILINEAR), dtype=np.float32)
                _blend(canvas, patch, _feather_mask(sw, sh, rng), sx, sy)
    patch = np.asarray(lesion.resize((w, h), Image.Resampling.BILINEAR), dtype=np.float32)
    _blend(canvas, patch, _feather_mask(w, h, rng), x0, y0)

    for name, draw in (("jewellery", _jewellery), ("fingers", _fingers), ("dark_object", _dark_object)):
        if name in chosen:
            _draw_beside(canvas, draw, rng, (x0, y0, x0 + w, y0 + h))
    if "shadow" in chosen:
        _shadow(canvas, rng)
    canvas *= rng.uniform(0.75, 1.15)  # exposure
    canvas += rng.normal(0, rng.uniform(1, 5), size=canvas.shape)
    scene = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    scene = scene.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))
    buffer = io.BytesIO()
    scene.save(buffer, format="JPEG", quality=int(rng.integers(60, 95)))
    return Image.open(buffer).convert("RGB"), (x0, y0, x0 + w, y0 + h)


def build_scenes(
    data_dir: Path,
    out_dir: Path,
    seed: int = 0,
    csv_path: Path | None = None,
    per_image: int = 1,
    exclude_trained_by: Path | None = None,
    log=print,
    hard: bool = False,
) -> list[Sample]:
    """Builds OUT/<class>/.../<stem>_s<k>.jpg and OUT/dataset.csv; source boxes (if any) are cropped first."""
    samples = discover(data_dir, csv_path)
    if exclude_trained_by is not None:
        trained = set(read_checkpoint(exclude_trained_by)[0].get("training_patients", []))
        if not trained:
            raise SystemExit(f"{exclude_trained_by} records no training_patients")
        samples = [s for s in samples if s.patient_id not in trained]
        log(f"{len(samples)} images of patients {exclude_trained_by.name} never trained on")
    rng = np.random.default_rng(seed)

    def lesion_of(sample):
        image = load_image(sample.path)
        return image.crop(sample.box) if sample.box else image

    scenes = []
    for sample in samples:
        lesion = lesion_of(sample)
        folder = out_dir / sample.path.relative_to(data_dir).parent
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(per_image):
            if hard:  # further lesions of the same class from other patients
                pool = [s for s in samples if s.label == sample.label and s.patient_id != sample.patient_id]
                picks = rng.choice(len(pool), size=min(3, len(pool)), replace=False) if pool else []
                scene, box = make_hard_scene(lesion, [lesion_of(pool[int(i)]) for i in picks], rng)
            else:
                scene, box = make_scene(lesion, rng)
            path = folder / f"{sample.path.stem}_s{k}.jpg"
            scene.save(path, quality=90)
            scenes.append(Sample(path, sample.label, sample.patient_id, box))
    write_csv(out_dir / CSV_NAME, out_dir, scenes)
    log(f"wrote {len(scenes)} scenes and {out_dir / CSV_NAME}")
    return scenes
