"""A set of photos that must come out *not assessable* or *not suspected* (issue 17, item 4).

``python -m ml negatives --out DIR [--seed N]`` writes ``DIR/non_mpox/<category>/*.jpg`` and
``DIR/SOURCES.md`` (where every category comes from and its licence). Categories:

rendered here (procedural, seeded; no outside material; the same licence as this code):
  ``healthy_skin``  six skin tones (Fitzpatrick I-VI) x body sites (forearm, back, palm, shin):
                    shading, pores, creases, freckles and small moles;
  ``hairy_skin``    the same with dark or light hair;
  ``fabric``        stripes, checks, weave and printed patterns with folds;
  ``hand``          a hand (palm and fingers) on a table or fabric;
  ``torso``         a face-free torso against a wall;
  ``room``          wall, floor, window and furniture in perspective;
  ``paper``         a page of text-like lines, slightly shadowed;
  ``screen``        a monitor or phone screen with a bright interface;
  ``blurred``       skin, hand and torso renders defocused (Gaussian sigma 2-4 % of the width);
  ``dark``          any render at 4-12 % exposure;
taken from scikit-image's bundled sample photos (``skimage.data``, when scikit-image is installed;
each picture's licence as stated in its docstring, listed in ``SKIMAGE_PHOTOS``):
  ``photos``        non-skin real photos (astronaut, coffee, cat, rocket, coins, bricks, grass, ...).

The renders are smoother and more regular than real phone photos (real healthy skin has
wrinkles, tattoos, scars, specular highlights and camera noise of its own), so a good result here
is necessary, not sufficient. Use the set for evaluation only: nothing in the shipped model is
fitted on it.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Approximate skin tones across Fitzpatrick types I-VI (RGB).
SKIN_TONES = [(241, 206, 180), (228, 185, 152), (206, 150, 112), (170, 116, 80), (120, 78, 52), (82, 54, 38)]
BODY_SITES = ("forearm", "back", "palm", "shin")
SIDE = (480, 800)

# skimage.data function -> (what it shows, licence as its docstring states).
SKIMAGE_PHOTOS = {
    "astronaut": ("astronaut portrait (NASA)", "public domain"),
    "coffee": ("cup of coffee", "CC0 (Rachel Michetti)"),
    "chelsea": ("a cat", "CC0 (Stefan van der Walt)"),
    "rocket": ("SpaceX rocket on the launch pad", "public domain"),
    "coins": ("Greek coins (Brooklyn Museum)", "no known copyright restrictions"),
    "brick": ("brick wall texture (CC0Textures)", "CC0"),
    "grass": ("grass texture (CC0Textures)", "CC0"),
    "gravel": ("gravel texture (CC0Textures)", "CC0"),
    "camera": ("man with a camera (Lav Varshney)", "CC0"),
    "hubble_deep_field": ("Hubble deep field (NASA)", "public domain"),
    "immunohistochemistry": ("microscopy of stained tissue", "no known copyright restrictions"),
    "page": ("scanned page of text", "no known copyright restrictions"),
    "text": ("photo of text on a sign", "public domain"),
    "horse": ("horse silhouette", "CC0 (Andreas Preuss)"),
    "moon": ("surface of the moon", "no known copyright restrictions"),
    "retina": ("retina fundus photo", "CC0 1.0"),
}


def _noise(rng, width, height, cells) -> np.ndarray:
    """Smooth noise in [-1, 1], (height, width)."""
    coarse = rng.uniform(-1, 1, size=(cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


def _size(rng) -> tuple[int, int]:
    long, short = int(rng.integers(*SIDE)), int(rng.integers(SIDE[0] * 3 // 4, SIDE[0] + 1))
    return (long, short) if rng.random() < 0.5 else (short, long)


def _to_image(array: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(array, 0, 255).astype(np.uint8))


def skin(rng, width, height, tone=None, site=None) -> np.ndarray:
    """Healthy skin of one tone and body site, float (h, w, 3)."""
    tone = np.array(SKIN_TONES[rng.integers(len(SKIN_TONES))] if tone is None else tone, np.float32)
    site = site or BODY_SITES[rng.integers(len(BODY_SITES))]
    tone = tone * rng.uniform(0.92, 1.08, size=3)
    shading = 1 + 0.2 * _noise(rng, width, height, 3) + 0.05 * _noise(rng, width, height, 15)
    pore_sd = {"forearm": 3, "back": 6, "palm": 4, "shin": 4}[site]
    texture = cv2.GaussianBlur(rng.normal(0, pore_sd, size=(height, width)).astype(np.float32), (0, 0), 0.8)
    array = tone * shading[..., None] + texture[..., None]
    image = _to_image(array)
    draw = ImageDraw.Draw(image)
    darker = tuple(int(c * 0.8) for c in tone)
    if site == "palm":  # creases
        for _ in range(int(rng.integers(4, 9))):
            points = [(float(rng.uniform(0, width)), float(rng.uniform(0, height)))]
            for _ in range(4):
                x, y = points[-1]
                points.append((x + float(rng.uniform(20, 90)), y + float(rng.uniform(-30, 30))))
            draw.line(points, fill=darker, width=int(rng.integers(1, 4)))
    for _ in range(int(rng.integers(0, 25 if site == "back" else 8))):  # freckles and small moles
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(1, 4)
        colour = tuple(int(c * rng.uniform(0.45, 0.8)) for c in tone)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(0.6)), dtype=np.float32)


def add_hair(rng, array: np.ndarray) -> np.ndarray:
    height, width = array.shape[:2]
    image = _to_image(array)
    draw = ImageDraw.Draw(image)
    dark = rng.random() < 0.7
    angle = rng.uniform(0, np.pi)
    for _ in range(int(rng.integers(60, 250))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        length = rng.uniform(15, 60)
        a = angle + rng.normal(0, 0.35)
        bend = rng.uniform(-8, 8)
        points = [
            (
                x + t * length * np.cos(a) + bend * t * t * np.sin(a),
                y + t * length * np.sin(a) - bend * t * t * np.cos(a),
            )
            for t in np.linspace(0, 1, 6)
        ]
        grey = int(rng.uniform(15, 60)) if dark else int(rng.uniform(150, 210))
        draw.line(
            [(float(px), float(py)) for px, py in points],
            fill=(grey, int(grey * 0.9), int(grey * 0.8)),
            width=int(rng.integers(1, 3)),
        )
    return np.asarray(image, dtype=np.float32)


def fabric(rng, width, height) -> np.ndarray:
    base = rng.uniform(30, 235, size=3).astype(np.float32)
    second = np.clip(base + rng.uniform(-90, 90, size=3), 0, 255)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(8, 70)
    kind = rng.integers(4)
    if kind == 0:
        angle = rng.uniform(0, np.pi)
        weight = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) / period * 2 * np.pi) > 0
    elif kind == 1:
        weight = ((xx // period + yy // period) % 2).astype(bool)
    elif kind == 2:
        weight = (np.sin(xx / 2.0) * np.sin(yy / 2.0)) > 0
    else:  # printed pattern: scattered flowers / dots
        layer = Image.new("L", (width, height), 0)
        draw = ImageDraw.Draw(layer)
        for _ in range(int(rng.integers(20, 120))):
            x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, 30)
            draw.ellipse([x - r, y - r * rng.uniform(0.5, 1), x + r, y + r], fill=255)
        weight = np.asarray(layer) > 0
    weight = weight.astype(np.float32)[..., None]
    cloth = base * (1 - weight) + second * weight
    folds = 1 + 0.3 * _noise(rng, width, height, 4)
    return cloth * folds[..., None] + rng.normal(0, 6, size=(height, width, 1))


def plain_surface(rng, width, height) -> np.ndarray:
    colour = rng.uniform(60, 230, size=3).astype(np.float32)
    return colour * (1 + 0.15 * _noise(rng, width, height, 3))[..., None] + rng.normal(0, 3, (height, width, 1))


def _paste_shape(rng, background: np.ndarray, mask: Image.Image) -> np.ndarray:
    """Skin (random tone) inside ``mask`` over ``background``, with a soft edge and a shadow."""
    height, width = background.shape[:2]
    body = skin(rng, width, height, site="forearm")
    soft = np.asarray(mask.filter(ImageFilter.GaussianBlur(3)), dtype=np.float32)[..., None] / 255
    shadow = np.asarray(mask.filter(ImageFilter.GaussianBlur(18)), dtype=np.float32)[..., None] / 255
    shade = 1 - 0.25 * np.roll(shadow, (12, 12), axis=(0, 1))
    return background * shade * (1 - soft) + body * soft


def hand(rng, width, height) -> np.ndarray:
    background = fabric(rng, width, height) if rng.random() < 0.5 else plain_surface(rng, width, height)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.5, 0.7)
    palm = min(width, height) * rng.uniform(0.22, 0.32)
    draw.ellipse([cx - palm * 0.8, cy - palm, cx + palm * 0.8, cy + palm * 0.9], fill=255)
    draw.rectangle([cx - palm * 0.5, cy + palm * 0.5, cx + palm * 0.5, height], fill=255)  # wrist
    for angle, length in zip(np.linspace(-0.55, 0.55, 4), (0.9, 1.05, 1.0, 0.8)):
        a = angle + rng.normal(0, 0.05) - np.pi / 2
        x0, y0 = cx + palm * 0.6 * np.sin(angle), cy - palm * 0.8
        x1, y1 = x0 + np.cos(a) * palm * length * 1.3, y0 + np.sin(a) * palm * length * 1.3
        draw.line([(x0, y0), (x1, y1)], fill=255, width=int(palm * 0.32))
        draw.ellipse([x1 - palm * 0.16, y1 - palm * 0.16, x1 + palm * 0.16, y1 + palm * 0.16], fill=255)
    tx, ty = cx - palm * 0.75, cy
    draw.line([(tx, ty), (tx - palm * 0.9, ty - palm * 0.7)], fill=255, width=int(palm * 0.36))  # thumb
    return _paste_shape(rng, background, mask)


def torso(rng, width, height) -> np.ndarray:
    background = plain_surface(rng, width, height)
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    draw.ellipse([width * 0.12, -height * 0.2, width * 0.88, height * 1.3], fill=255)
    array = _paste_shape(rng, background, mask)
    image = _to_image(array)
    draw = ImageDraw.Draw(image)
    tone = array[height // 2, width // 2]
    for x in (0.35, 0.65):  # nipples
        r = min(width, height) * 0.015
        draw.ellipse(
            [width * x - r, height * 0.3 - r, width * x + r, height * 0.3 + r], fill=tuple(int(c * 0.6) for c in tone)
        )
    r = min(width, height) * 0.012  # navel
    draw.ellipse(
        [width * 0.5 - r, height * 0.75 - r * 1.5, width * 0.5 + r, height * 0.75 + r * 1.5],
        fill=tuple(int(c * 0.45) for c in tone),
    )
    side = np.linspace(-1, 1, width)[None, :, None]
    return np.asarray(image, dtype=np.float32) * (1 - 0.25 * side**2)


def room(rng, width, height) -> np.ndarray:
    wall = rng.uniform(120, 240, size=3)
    floor = rng.uniform(50, 180, size=3)
    horizon = int(height * rng.uniform(0.5, 0.7))
    image = Image.new("RGB", (width, height), tuple(int(c) for c in wall))
    draw = ImageDraw.Draw(image)
    draw.polygon([(0, horizon), (width, horizon), (width, height), (0, height)], fill=tuple(int(c) for c in floor))
    for x in np.linspace(-width, 2 * width, 14):  # floorboards in perspective
        draw.line([(width / 2, horizon - height), (x, height)], fill=tuple(int(c * 0.85) for c in floor), width=2)
    draw.rectangle([0, horizon - 4, width, horizon + 4], fill=tuple(int(c * 0.7) for c in wall))
    wx = rng.uniform(0.05, 0.6) * width  # window
    draw.rectangle([wx, height * 0.1, wx + width * 0.3, horizon * 0.7], fill=(235, 240, 250))
    draw.line([(wx + width * 0.15, height * 0.1), (wx + width * 0.15, horizon * 0.7)], fill=(90, 80, 70), width=5)
    for _ in range(int(rng.integers(2, 5))):  # furniture
        x0, w = rng.uniform(0, width), rng.uniform(0.1, 0.35) * width
        top, colour = horizon - rng.uniform(0.05, 0.35) * height, tuple(int(c) for c in rng.uniform(30, 200, 3))
        draw.rectangle([x0, top, x0 + w, horizon + rng.uniform(0.05, 0.2) * height], fill=colour)
    array = np.asarray(image, dtype=np.float32)
    return array * (1 + 0.1 * _noise(rng, width, height, 3))[..., None] + rng.normal(0, 4, array.shape)


def paper(rng, width, height) -> np.ndarray:
    background = plain_surface(rng, width, height) * 0.6
    image = _to_image(background)
    draw = ImageDraw.Draw(image)
    margin = min(width, height) * rng.uniform(0.03, 0.1)
    sheet = [margin, margin, width - margin, height - margin]
    draw.rectangle(sheet, fill=tuple(int(v) for v in rng.uniform(225, 252, 3)))
    y = sheet[1] + 30
    while y < sheet[3] - 30:
        x = sheet[0] + 25
        while x < sheet[2] - 40:
            word = rng.uniform(12, 60)
            draw.rectangle([x, y, min(x + word, sheet[2] - 25), y + 6], fill=(40, 40, 45))
            x += word + rng.uniform(6, 12)
        y += rng.uniform(14, 22)
    array = np.asarray(image.filter(ImageFilter.GaussianBlur(0.7)), dtype=np.float32)
    return array * (1 - 0.2 * (np.linspace(0, 1, width)[None, :, None]))


def screen(rng, width, height) -> np.ndarray:
    image = _to_image(plain_surface(rng, width, height) * 0.5)
    draw = ImageDraw.Draw(image)
    bezel = min(width, height) * rng.uniform(0.04, 0.12)
    draw.rectangle([bezel, bezel, width - bezel, height - bezel], fill=(15, 15, 18))
    inner = [bezel * 1.3, bezel * 1.3, width - bezel * 1.3, height - bezel * 1.3]
    draw.rectangle(inner, fill=tuple(int(v) for v in rng.uniform(200, 255, 3)))
    draw.rectangle([inner[0], inner[1], inner[2], inner[1] + 40], fill=tuple(int(v) for v in rng.uniform(20, 120, 3)))
    for _ in range(int(rng.integers(4, 12))):
        x0, y0 = rng.uniform(inner[0], inner[2] - 60), rng.uniform(inner[1] + 50, inner[3] - 30)
        draw.rectangle(
            [x0, y0, min(x0 + rng.uniform(40, 200), inner[2]), min(y0 + rng.uniform(10, 80), inner[3])],
            fill=tuple(int(v) for v in rng.uniform(0, 255, 3)),
        )
    array = np.asarray(image, dtype=np.float32)
    yy = np.arange(height)[:, None, None]
    return array * (1 - 0.04 * (np.sin(yy / 1.7) > 0))  # moire of a photographed display


RENDERERS = {
    "healthy_skin": lambda rng, w, h: skin(rng, w, h),
    "hairy_skin": lambda rng, w, h: add_hair(rng, skin(rng, w, h)),
    "fabric": fabric,
    "hand": hand,
    "torso": torso,
    "room": room,
    "paper": paper,
    "screen": screen,
}
PER_CATEGORY = 24  # healthy skin: 6 tones x 4 sites


def render(category: str, rng: np.random.Generator, index: int) -> Image.Image:
    width, height = _size(rng)
    if category == "healthy_skin":
        array = skin(rng, width, height, SKIN_TONES[index % 6], BODY_SITES[(index // 6) % 4])
    elif category == "blurred":
        source = ("healthy_skin", "hand", "torso")[index % 3]
        image = render(source, rng, index)
        return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.02, 0.04) * image.width))
    elif category == "dark":
        source = list(RENDERERS)[index % len(RENDERERS)]
        image = render(source, rng, index)
        return _to_image(np.asarray(image, dtype=np.float32) * rng.uniform(0.04, 0.12))
    else:
        array = RENDERERS[category](rng, width, height)
    return _to_image(array)


def skimage_photos() -> dict[str, Image.Image]:
    """The bundled scikit-image sample photos in ``SKIMAGE_PHOTOS`` ({} if it is not installed)."""
    try:
        from skimage import data
    except ImportError:
        return {}
    photos = {}
    for name in SKIMAGE_PHOTOS:
        array = np.asarray(getattr(data, name)())
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        if array.ndim == 2:
            array = np.stack([array] * 3, axis=-1)
        photos[name] = Image.fromarray(np.asarray(array[..., :3], dtype=np.uint8))
    return photos


def build_negatives(out: Path, seed: int = 0, per_category: int = PER_CATEGORY, log=print) -> list[Path]:
    """Writes the set; returns the image paths."""
    rng = np.random.default_rng(seed)
    folder = Path(out) / "non_mpox"
    paths = []
    for category in list(RENDERERS) + ["blurred", "dark"]:
        target = folder / category
        target.mkdir(parents=True, exist_ok=True)
        for i in range(per_category):
            path = target / f"neg{seed}-{category}-{i:03d}.jpg"
            render(category, rng, i).save(path, quality=int(rng.integers(80, 95)))
            paths.append(path)
    photos = skimage_photos()
    if photos:
        (folder / "photos").mkdir(parents=True, exist_ok=True)
        for name, image in photos.items():
            path = folder / "photos" / f"skimage-{name}.jpg"
            image.save(path, quality=92)
            paths.append(path)
    (Path(out) / "SOURCES.md").write_text(_sources(seed, per_category, sorted(photos)))
    log(f"wrote {len(paths)} images to {folder} ({'with' if photos else 'without'} scikit-image photos)")
    return paths


def _sources(seed: int, per_category: int, photos: list[str]) -> str:
    lines = [
        f"# Negatives set (`python -m ml negatives --seed {seed}`)",
        "",
        "Every image here must come out *not assessable* or *not suspected*.",
        "",
        "| folder | source | licence |",
        "|---|---|---|",
    ]
    for category in list(RENDERERS) + ["blurred", "dark"]:
        lines.append(
            f"| `non_mpox/{category}/` ({per_category}) | rendered by `ml/research/negatives.py`, seed {seed} "
            "| the project's own licence (no outside material) |"
        )
    for name in photos:
        what, licence = SKIMAGE_PHOTOS[name]
        lines.append(
            f"| `non_mpox/photos/skimage-{name}.jpg` | scikit-image `skimage.data.{name}()`: {what} | {licence} |"
        )
    return "\n".join(lines) + "\n"


def score_negatives(model, out: Path, batch_size: int = 8) -> dict:
    """Runs the portal's path (``analyse_batch``: automatic ROI, one pass) over every category of a
    negatives folder: share flagged and share not assessable, with 95 % Wilson intervals."""
    from ..metrics import wilson_ci
    from ..preprocess import load_image

    report = {}
    for folder in sorted(p for p in (Path(out) / "non_mpox").iterdir() if p.is_dir()):
        paths = sorted(folder.glob("*.jpg"))
        analyses = []
        for start in range(0, len(paths), batch_size):
            analyses += model.analyse_batch([load_image(p) for p in paths[start : start + batch_size]])
        n = len(analyses)
        flagged = sum(a.assessable and a.probability >= model.threshold for a in analyses)
        not_assessable = sum(not a.assessable for a in analyses)
        reasons = {}
        for a in analyses:
            if a.reason:
                reasons[a.reason] = reasons.get(a.reason, 0) + 1
        report[folder.name] = {
            "n": n,
            "flagged": flagged,
            "flagged_share": flagged / n,
            "flagged_ci95": list(wilson_ci(flagged, n)),
            "not_assessable": not_assessable,
            "not_assessable_share": not_assessable / n,
            "not_assessable_ci95": list(wilson_ci(not_assessable, n)),
            "reasons": reasons,
        }
    return report
