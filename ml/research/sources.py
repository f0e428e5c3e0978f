"""Photos from several public sources, read with their grouping, brought to one look, and cached as
frozen-backbone features (the input of :mod:`ml.research.source_study`).

A data root holds (any part may be missing; see ``SOURCES``)::

    msld_v1/mpox/Mxx_yy.jpg                 mpox (MSLD; group = patient id, the name before "_")
    msld_v1/non_mpox/NMxx_yy.jpg            chickenpox or measles (MSLD gives no finer label)
    healthy_abdomen/*.jpeg                  healthy skin (one group per file)
    genital_lesions/{genital_herpes,genital_warts,syphilis}/*   (groups: perceptual-hash near-duplicates)

Looks (what the backbone sees):

- ``as_is``: the whole photo resized to the input size (the issue's "trap" probe);
- ``harmonised``: caption / watermark bands trimmed, a lesion-sized centre square, resized to the input
  size and re-encoded as JPEG of one quality, the same for every source;
- augmented views of the harmonised photo (scale, colour, blur, resolution and JPEG);
- ``STYLES``: the harmonised photo re-made in another source's look (the style-invariance check).
"""

from __future__ import annotations

import hashlib
import io
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from torchvision.transforms import v2 as T

from ..architectures import LesionNet, get_arch
from ..assessment import quality_measures
from ..preprocess import load_image, to_batch

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# The differential's classes, in the order of the head's outputs.
CLASSES = ("mpox", "chickenpox_or_measles", "genital_herpes", "genital_warts", "syphilis", "healthy_skin")
MPOX = "mpox"


@dataclass(frozen=True)
class Source:
    name: str
    folder: str  # relative to the data root
    label: str  # one of CLASSES
    grouping: str  # "patient_id" | "file" | "phash"


SOURCES = (
    Source("msld_mpox", "msld_v1/mpox", "mpox", "patient_id"),
    Source("msld_chickenpox_measles", "msld_v1/non_mpox", "chickenpox_or_measles", "patient_id"),
    Source("healthy_abdomen", "healthy_abdomen", "healthy_skin", "file"),
    Source("genital_herpes", "genital_lesions/genital_herpes", "genital_herpes", "phash"),
    Source("genital_warts", "genital_lesions/genital_warts", "genital_warts", "phash"),
    Source("syphilis", "genital_lesions/syphilis", "syphilis", "phash"),
)
# Hamming distance (of 64 bits) up to which two photos count as near-duplicates (either hash).
PHASH_MAX_DISTANCE = 10
CENTRE_FRACTION = 0.8  # side of the harmonised centre square, share of the shorter side
HARMONISED_JPEG = 75
SIZE = 224
# The style-invariance copies are made of MSLD's photos (the one mpox source and its negatives):
# the check asks whether mpox stays mpox when it no longer looks like MSLD.
STYLED_SOURCES = ("msld_mpox", "msld_chickenpox_measles")
STYLES = ("tight_crop", "web_jpeg", "downscale", "colour_cast", "caption_band", "watermark")


@dataclass(frozen=True)
class Photo:
    path: Path
    source: str
    label: str
    group: str


# ---------------------------------------------------------------- reading and grouping


def perceptual_hashes(image: Image.Image) -> tuple[int, int]:
    """(difference hash, DCT perceptual hash), 64 bits each, of the greyscale photo."""
    grey = np.asarray(image.convert("L"), dtype=np.float32)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA)
    dhash = (small[:, 1:] > small[:, :-1]).flatten()
    dct = cv2.dct(cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA))[:8, :8].flatten()
    phash = dct > np.median(dct[1:])
    return (int("".join("1" if b else "0" for b in dhash), 2), int("".join("1" if b else "0" for b in phash), 2))


def near_duplicate_groups(hashes: list[tuple[int, int]], max_distance: int = PHASH_MAX_DISTANCE) -> list[int]:
    """Group index per photo: photos linked (transitively) when either hash is within ``max_distance``."""
    parent = list(range(len(hashes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(hashes)):
        for j in range(i):
            if any(bin(a ^ b).count("1") <= max_distance for a, b in zip(hashes[i], hashes[j])):
                parent[root(i)] = root(j)
    return [root(i) for i in range(len(hashes))]


def source_paths(root: Path, log=print, per_source: int | None = None, seed: int = 0) -> dict[Source, list[Path]]:
    """The image files of every source under ``root`` (``per_source``: at most this many, drawn at
    random with ``seed``; the draw that chose a checkpoint's training photos)."""
    rng = np.random.default_rng(seed)
    found = {}
    for source in SOURCES:
        folder = root / source.folder
        if not folder.is_dir():
            log(f"  source {source.name}: {folder} missing, left out")
            continue
        paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if per_source and len(paths) > per_source:
            paths = sorted(rng.choice(paths, per_source, replace=False).tolist())
        found[source] = paths
    return found


def read_sources(
    root: Path, log=print, per_source: int | None = None, seed: int = 0
) -> tuple[list[Photo], list[Image.Image]]:
    """The readable photos of every source under ``root`` (missing sources are skipped, with a
    line in the log) with their group; near-duplicate groups span all phash sources together.
    ``per_source``: at most this many files per source, drawn at random (``seed``), for a CPU budget."""
    photos, images, hashed = [], [], []
    for source, paths in source_paths(root, log, per_source, seed).items():
        for path in paths:
            try:
                image = load_image(path)
            except Exception as error:  # an unreadable file is reported and left out, never fatal
                log(f"  skipped {path}: {type(error).__name__}")
                continue
            group = (
                f"{source.name}:{path.stem.split('_')[0]}"
                if source.grouping == "patient_id"
                else f"{source.name}:{path.name}"
            )
            if source.grouping == "phash":
                hashed.append(len(photos))
            photos.append(Photo(path, source.name, source.label, group))
            images.append(image)
        log(f"  source {source.name}: {sum(p.source == source.name for p in photos)} photos")
    links = near_duplicate_groups([perceptual_hashes(images[i]) for i in hashed])
    for i, link in zip(hashed, links):
        photos[i] = Photo(photos[i].path, photos[i].source, photos[i].label, f"phash:{link}")
    if hashed:
        log(f"  near-duplicate groups: {len(set(links))} groups for {len(hashed)} genital-lesion photos")
    return photos, images


# ---------------------------------------------------------------- looks


def jpeg(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=int(quality))
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def _uniform(line: np.ndarray) -> bool:
    """A caption / watermark bar: a row or column that is nearly one flat colour, or nearly white or
    black (text on a bar leaves most of the line at the bar's colour)."""
    grey = line.mean(axis=-1)
    return bool(np.median(np.abs(grey - np.median(grey))) < 4 or np.mean(grey > 235) > 0.8 or np.mean(grey < 20) > 0.8)


def trim_bands(image: Image.Image, max_fraction: float = 0.3) -> Image.Image:
    """Cuts flat bars (captions, borders, watermark strips) off each edge, at most ``max_fraction``
    of the side from each edge."""
    array = np.asarray(image)
    h, w = array.shape[:2]
    top, bottom, left, right = 0, h, 0, w
    while top < h * max_fraction and _uniform(array[top]):
        top += 1
    while bottom > h * (1 - max_fraction) and _uniform(array[bottom - 1]):
        bottom -= 1
    while left < w * max_fraction and _uniform(array[top:bottom, left]):
        left += 1
    while right > w * (1 - max_fraction) and _uniform(array[top:bottom, right - 1]):
        right -= 1
    return image.crop((left, top, right, bottom)) if (right - left > 16 and bottom - top > 16) else image


def centre_square(image: Image.Image, fraction: float = CENTRE_FRACTION) -> Image.Image:
    side = int(min(image.size) * fraction)
    x0, y0 = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((x0, y0, x0 + side, y0 + side))


def harmonised_base(image: Image.Image) -> Image.Image:
    """Bands trimmed, the lesion-sized centre square (before the final resize and JPEG)."""
    return centre_square(trim_bands(image))


def harmonise(image: Image.Image, size: int = SIZE) -> Image.Image:
    """The one look every source is brought to: ``harmonised_base`` at ``size``, JPEG quality 75."""
    return jpeg(
        harmonised_base(image).resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0), HARMONISED_JPEG
    )


def as_is(image: Image.Image, size: int = SIZE) -> Image.Image:
    return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


class _RandomJpeg:
    def __call__(self, image: Image.Image) -> Image.Image:
        return jpeg(image, int(torch.randint(20, 91, (1,))))


class _RandomDownscale:
    """Down to 25-100 % of the side and back up: phone close-ups and small web copies alike."""

    def __call__(self, image: Image.Image) -> Image.Image:
        scale = float(torch.empty(1).uniform_(0.25, 1.0))
        small = image.resize(
            (max(16, int(image.width * scale)), max(16, int(image.height * scale))), Image.Resampling.BILINEAR
        )
        return small.resize(image.size, Image.Resampling.BILINEAR)


def augmentation(size: int = SIZE) -> T.Compose:
    """Strong photometric and scale augmentation of the harmonised base."""
    return T.Compose(
        [
            T.RandomRotation(30),
            T.RandomResizedCrop(size, scale=(0.25, 1.0), ratio=(0.75, 1.33), antialias=True),
            T.RandomHorizontalFlip(),
            T.RandomVerticalFlip(),
            T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.5, hue=0.06),
            T.RandomApply([T.GaussianBlur(5, sigma=(0.1, 1.5))], p=0.4),
            T.RandomApply([_RandomDownscale()], p=0.5),
            _RandomJpeg(),
        ]
    )


def _caption_band(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    copy = image.copy()
    draw = ImageDraw.Draw(copy)
    band = int(image.height * 0.14)
    draw.rectangle((0, image.height - band, image.width, image.height), fill=(255, 255, 255))
    draw.text((6, image.height - band + 4), f"Fig. 2  Lesion, day {rng.integers(2, 15)}", fill=(0, 0, 0))
    return copy


def _watermark(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    for row in range(3):
        y = int(image.height * (0.2 + 0.3 * row))
        draw.text((int(rng.integers(0, image.width // 3)), y), "www.stock-images.example", fill=(255, 255, 255, 130))
    return Image.alpha_composite(image.convert("RGBA"), layer).convert("RGB")


def restyle(image: Image.Image, style: str, rng: np.random.Generator) -> Image.Image:
    """The harmonised photo re-made in another source's look (all at ``SIZE``)."""
    if style == "tight_crop":  # MSLD's tight 224 px crops around the lesion
        return centre_square(image, 0.6).resize(image.size, Image.Resampling.BILINEAR)
    if style == "web_jpeg":
        return jpeg(image, 25)
    if style == "downscale":
        return image.resize((image.width // 3, image.height // 3), Image.Resampling.BILINEAR).resize(
            image.size, Image.Resampling.BILINEAR
        )
    if style == "colour_cast":
        gains = rng.uniform(0.85, 1.15, size=3)
        array = np.asarray(image, dtype=np.float32)
        return Image.fromarray(np.clip(255 * (array / 255) ** rng.uniform(0.8, 1.25) * gains, 0, 255).astype(np.uint8))
    if style == "caption_band":
        return _caption_band(image, rng)
    if style == "watermark":
        return _watermark(image, rng)
    raise ValueError(f"unknown style {style!r}")


# ---------------------------------------------------------------- features


def pooled_features(net: LesionNet, arch: str, crops: list[Image.Image], batch: int = 32) -> torch.Tensor:
    spec = get_arch(arch)
    out = []
    with torch.inference_mode():
        for start in range(0, len(crops), batch):
            out.append(net.pooled(net.features(to_batch(crops[start : start + batch], spec.mean, spec.std))))
    return torch.cat(out)


def cache_key(photos: list[Photo], arch: str, views: int, seed: int) -> str:
    text = (
        "|".join(f"{p.path}:{p.path.stat().st_size}" for p in photos)
        + f"|{arch}|{views}|{seed}|{STYLES}|{STYLED_SOURCES}|quality per look"
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def extract(
    photos: list[Photo],
    images: list[Image.Image],
    net: LesionNet,
    arch: str,
    views: int,
    seed: int,
    log=print,
    batch: int = 48,
    trunk: bool = False,
) -> dict:
    """Per photo: features (fp16) of the as-is and harmonised looks and ``views`` augmented views;
    for the photos of ``STYLED_SOURCES`` one copy per style too (``styled`` marks them; other rows
    of the ``style_*`` entries are zero); the quality measures of the as-is and harmonised crops
    (the assessability rule's inputs, per look). Crops of several photos share a forward batch.
    With ``trunk``, also the activations that enter the backbone's last stage (``ArchSpec.tail_start``)
    of the as-is and restyled looks, under ``trunk`` (what fine-tuning the last stage trains on and
    is judged on)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    augment = augmentation()
    kinds = ["as_is", "harmonised"] + [f"augmented_{v}" for v in range(views)] + [f"style_{s}" for s in STYLES]
    features = {kind: [None] * len(photos) for kind in kinds}
    pending: list[tuple[int, str, Image.Image]] = []
    styled, quality = [], {"as_is": [], "harmonised": []}
    start = time.perf_counter()

    spec = get_arch(arch)
    first, last = spec.split_features(net)
    tuned_looks = [kind for kind in kinds if kind == "as_is" or kind.startswith("style_")]
    inputs = {kind: [None] * len(photos) for kind in tuned_looks} if trunk else None

    def flush():
        with torch.inference_mode():
            middle = first(to_batch([crop for _, _, crop in pending], spec.mean, spec.std))
            out = net.pooled(last(middle)).half()
        for k, ((i, kind, _), row) in enumerate(zip(pending, out)):
            features[kind][i] = row
            if inputs is not None and kind in inputs:
                inputs[kind][i] = middle[k].half()
        pending.clear()

    for i, (photo, image) in enumerate(zip(photos, images)):
        base = harmonised_base(image)
        plain = harmonise(image)
        restyled = photo.source in STYLED_SOURCES
        whole = as_is(image)
        pending += [(i, "as_is", whole), (i, "harmonised", plain)]
        pending += [(i, f"augmented_{v}", augment(base)) for v in range(views)]
        if restyled:
            pending += [(i, f"style_{s}", restyle(plain, s, rng)) for s in STYLES]
        styled.append(restyled)
        quality["as_is"].append(quality_measures(np.asarray(whole)))
        quality["harmonised"].append(quality_measures(np.asarray(plain)))
        if len(pending) >= batch:
            flush()
        if (i + 1) % 100 == 0:
            log(f"  features {i + 1}/{len(images)} ({time.perf_counter() - start:.0f} s)")
    if pending:
        flush()
    log(f"  features {len(images)}/{len(images)} ({time.perf_counter() - start:.0f} s)")
    width = features["as_is"][0].shape[0]
    zero = torch.zeros(width, dtype=torch.float16)
    cache = {
        kind: torch.stack([row if row is not None else zero for row in rows])
        for kind, rows in features.items()
        if not kind.startswith("augmented_")
    }
    cache["augmented"] = torch.stack([torch.stack(features[f"augmented_{v}"]) for v in range(views)], dim=1)
    cache["styled"] = torch.tensor(styled)
    cache["quality"] = quality
    if inputs is not None:
        shape = inputs["as_is"][0].shape
        blank = torch.zeros(shape, dtype=torch.float16)
        cache["trunk"] = {
            "arch": arch,
            **{
                kind: torch.stack([row if row is not None else blank for row in rows]).contiguous()
                for kind, rows in inputs.items()
            },
        }
    return cache


def backbone(arch: str) -> LesionNet:
    """The frozen ImageNet backbone (the shipped network's features)."""
    from .training import TrainConfig, build_initial_network

    net = build_initial_network(TrainConfig(arch=arch, init="imagenet"))
    return net.eval().to(memory_format=torch.channels_last)


def load_features(
    root: Path,
    arch: str,
    views: int,
    seed: int,
    cache_dir: Path,
    log=print,
    per_source: int | None = None,
    trunk: bool = False,
) -> tuple[list[Photo], dict]:
    """Photos and their cached features (computed once per data, backbone, views and seed; with
    ``trunk``, the last stage's inputs too, in a larger cache of its own)."""
    log(f"reading sources under {root}" + (f", at most {per_source} photos per source" if per_source else ""))
    photos, images = read_sources(Path(root), log, per_source, seed)
    if not photos:
        raise SystemExit(f"no photos of any source under {root}")
    path = Path(cache_dir) / f"sources-{cache_key(photos, arch, views, seed)}{'-trunk' if trunk else ''}.pt"
    if path.is_file():
        log(f"features from {path}")
        return photos, torch.load(path, weights_only=False)
    log(f"extracting {arch} features ({2 + views} crops per photo, {len(STYLES)} more for {', '.join(STYLED_SOURCES)})")
    cache = extract(photos, images, backbone(arch), arch, views, seed, log, trunk=trunk)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(cache, path)
    log(f"cached {path}")
    return photos, cache
