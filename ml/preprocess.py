"""Image loading and the one preprocessing path shared by training, evaluation and inference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pi_heif
import torch
from PIL import Image, ImageOps

from .boxes import Box

# HEIC/HEIF (phone cameras) for Pillow: pi-heif is pillow-heif's decode-only build (LGPL; the
# pillow-heif wheels bundle the GPL x265 encoder, which reading never needs).
pi_heif.register_heif_opener()


def open_image(path: str | Path) -> Image.Image:
    """Opens an image file by its content (the file name and extension play no part)."""
    return Image.open(path)


def load_image(path: str | Path) -> Image.Image:
    """Decodes any image Pillow reads (HEIC too), applies its EXIF orientation, converts to RGB."""
    with open_image(path) as im:
        return ImageOps.exif_transpose(im).convert("RGB")


def crop_resize(image: Image.Image, roi: Box | None, size: int) -> Image.Image:
    """Crops to ``roi`` (full-image pixels; None = whole photo) and resizes to size x size."""
    if image.mode != "RGB":
        image = image.convert("RGB")
    if roi is not None:
        image = image.crop(roi)
    return image.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=3.0)


def to_batch(images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Equal-size RGB images -> normalised float tensor (B, 3, H, W) in channels_last layout."""
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in images])
    x = torch.from_numpy(array).permute(0, 3, 1, 2).float().div_(255.0)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)
