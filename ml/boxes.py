"""Box geometry, and the box a patient's tap on the lesion stands for.

Plain Python (no torch): the portal's web process imports this without loading the model stack.
"""

from __future__ import annotations

import math

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), full-photo pixels, x1/y1 exclusive

# A tap on the lesion becomes a square of this share of the photo's shorter side, centred on the
# tap and shifted to stay inside the photo; chosen on the tuning scene set (MODEL_CARD.md, "ROI").
TAP_BOX_FRACTION = 0.4
# ... but never smaller than this many pixels (unless the photo itself is smaller).
TAP_BOX_MIN_SIDE = 64


def clamp_box(box, image_size: tuple[int, int]) -> Box:
    """Integer box clipped to the image, at least 1 px wide and high. Raises ValueError if inverted."""
    width, height = image_size
    x0, y0, x1, y1 = (int(round(float(v))) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"invalid box {tuple(box)}: need x0 < x1 and y0 < y1")
    x0, x1 = min(max(x0, 0), width - 1), min(max(x1, 1), width)
    y0, y1 = min(max(y0, 0), height - 1), min(max(y1, 1), height)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def grow(lo: float, hi: float, length: float, extent: float) -> tuple[float, float]:
    """Grows [lo, hi] about its centre to at least ``length`` (capped at ``extent``), shifted
    to stay inside [0, extent]."""
    length = min(max(length, hi - lo), extent)
    lo = (lo + hi - length) / 2
    lo = min(max(lo, 0.0), extent - length)
    return lo, lo + length


def square_box(x0: float, y0: float, x1: float, y1: float, image_size: tuple[int, int]) -> Box:
    """The box grown to a square (as far as the image allows) of at least 1 px, kept inside the
    image, with its edges rounded outwards to whole pixels."""
    width, height = image_size
    side = math.ceil(max(x1 - x0, y1 - y0, 1.0) - 1e-9)
    x0, _ = grow(x0, x1, side, width)
    y0, _ = grow(y0, y1, side, height)
    x0, y0 = math.floor(x0), math.floor(y0)
    return clamp_box((x0, y0, x0 + min(side, width), y0 + min(side, height)), image_size)


def box_from_tap(x: float, y: float, image_size: tuple[int, int], fraction: float = TAP_BOX_FRACTION) -> Box:
    """The square box a tap at (x, y) on the lesion stands for (see ``TAP_BOX_FRACTION``).
    Raises ValueError when the point lies outside the photo."""
    width, height = image_size
    if not (0 <= x < width and 0 <= y < height):
        raise ValueError(f"tap ({x}, {y}) lies outside the {width}x{height} photo")
    shorter = min(width, height)
    side = min(max(fraction * shorter, TAP_BOX_MIN_SIDE), shorter)
    x0, x1 = grow(x, x, side, width)
    y0, y1 = grow(y, y, side, height)
    return clamp_box((x0, y0, x1, y1), image_size)
