"""Image loading and the one preprocessing path shared by training, evaluation and inference."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pi_heif
from PIL import Image, ImageOps

from .boxes import Box

if TYPE_CHECKING:
    import torch

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


def to_array(images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Equal-size RGB images -> normalised float32 array (B, 3, H, W) with NHWC memory (the
    strides of torch's channels_last); the input of an :data:`ml.heads.Backbone`."""
    array = np.stack([np.asarray(im, dtype=np.uint8) for im in images]).astype(np.float32) / 255.0
    array = (array - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return array.transpose(0, 3, 1, 2)


def to_batch(images: Sequence[Image.Image], mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """:func:`to_array` as a torch tensor in channels_last layout (training and research; torch is
    imported here, so the ONNX Runtime worker that imports this module never loads it)."""
    import torch

    return torch.from_numpy(to_array(images, mean, std))
