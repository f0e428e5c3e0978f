"""The automatic lesion ROI.

The automatic ROI is a box around the strongest region of a locating map. The map starts from the
network's class-agnostic activation energy (sum over channels of the activated target-layer
features of the whole photo, upsampled): on plain synthetic scenes it localised lesions better than
Grad-CAM of the predicted class (mean IoU 0.60 vs 0.42, see MODEL_CARD.md) and needs a plain
forward only. But the energy is high on anything salient (a glove, a ring, a dark object in a
corner), so :func:`locating_map` weighs it with cues of where a lesion can be: near skin colour
(gloves, fabric, metal and dark objects are not skin; lesions inside skin are kept by closing the
mask), colour contrast with the surrounding skin, and distance from the photo's border.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

from .boxes import Box, grow, square_box
from .gradcam import scale_cam

# Used by box_from_cam's defaults (see MODEL_CARD.md, "ROI").
CAM_THRESHOLD = 0.5
BOX_MARGIN = 0.0
MIN_SIDE_FRACTION = 0.2
# Skin in YCrCb (Chai and Ngan 1999): wide enough for Fitzpatrick I-VI at any exposure.
SKIN_CR = (133, 180)
SKIN_CB = (77, 135)


@dataclass(frozen=True)
class RoiParams:
    """How the automatic ROI weighs the activation energy (0 switches a cue off)."""

    locate_size: int = 224  # side of the whole-photo locating pass
    threshold: float = CAM_THRESHOLD
    min_side_fraction: float = MIN_SIDE_FRACTION
    skin: float = 0.0  # exponent on the near-skin mask
    contrast: float = 0.0  # exponent on colour contrast with the surrounding skin
    border: float = 0.0  # share of the side over which the border fades the map out
    # One pass only: True scores the box's cells of the map; False scores the whole photo and the
    # box shows where the lesion is (the shipped choice, MODEL_CARD.md "Issue 26").
    score_box: bool = False


# The method of issue 4: activation energy alone (a separate 224 px locating pass).
ENERGY_ONLY = RoiParams()
# The method of issue 17, chosen on the tuning set of hard scenes: a separate 416 px locating pass
# (the crop then takes a second pass). Kept for comparison and for the lesion-check renders of
# ``ml.research.study``.
LOCATING_PASS_416 = RoiParams(locate_size=416, threshold=0.5, skin=1.0, contrast=0.0, border=0.3)
# The shipped method (issue 26): the same weighing on the classifying pass itself (the whole
# photo at the model's input size, ``locate_size``), which scores the whole photo; see
# MODEL_CARD.md, "ROI" and "Issue 26".
AUTO_ROI = RoiParams(locate_size=224, threshold=0.5, skin=1.0, contrast=0.0, border=0.3)
# The same box, scored from its own cells of the map (compared in the ROI studies, not shipped:
# it flagged more unseen real photos than the whole photo did).
BOX_SCORED_ONE_PASS = replace(AUTO_ROI, score_box=True)


def near_skin(rgb: np.ndarray) -> np.ndarray:
    """0..1 map: skin colour, morphologically closed (kernel 1/8 of the shorter side) so that
    lesions narrower than that inside skin count as skin too; a wider patch of non-skin colour
    (a large red or dark area) stays down-weighted, a known limit (MODEL_CARD.md, "ROI")."""
    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    skin = ((cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])).astype(np.uint8)
    side = max(3, min(rgb.shape[:2]) // 8) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    closed = cv2.morphologyEx(skin, cv2.MORPH_CLOSE, kernel)
    return cv2.GaussianBlur(closed.astype(np.float32), (side, side), 0)


def skin_contrast(rgb: np.ndarray) -> np.ndarray:
    """0..1 map: colour distance (CIELAB) of each pixel from the median skin around it."""
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    side = max(3, min(rgb.shape[:2]) // 4) | 1
    surround = cv2.blur(cv2.medianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB), 5), (side, side)).astype(np.float32)
    distance = np.linalg.norm(lab - surround, axis=-1)
    distance = cv2.GaussianBlur(distance, (0, 0), max(1.0, min(rgb.shape[:2]) / 64))
    return distance / (distance.max() + 1e-6)


def border_window(shape: tuple[int, int], fade: float) -> np.ndarray:
    """1 inside, falling linearly to 0 at the edge over ``fade`` of each side."""
    height, width = shape
    ramp_y = np.clip((np.minimum(np.arange(height), height - 1 - np.arange(height)) + 0.5) / (fade * height), 0, 1)
    ramp_x = np.clip((np.minimum(np.arange(width), width - 1 - np.arange(width)) + 0.5) / (fade * width), 0, 1)
    return np.outer(ramp_y, ramp_x).astype(np.float32)


@dataclass(frozen=True)
class Cues:
    """The image cues at the activation map's resolution (None: not needed by the params)."""

    skin: np.ndarray | None
    contrast: np.ndarray | None


def image_cues(rgb: np.ndarray, params: RoiParams) -> Cues:
    """The cues of the photo ``rgb`` (uint8 (H, W, 3), at the locating map's size)."""
    if not (params.skin or params.contrast):
        return Cues(None, None)
    return Cues(near_skin(rgb) if params.skin else None, skin_contrast(rgb) if params.contrast else None)


def weigh(energy: np.ndarray, cues: Cues, params: RoiParams) -> np.ndarray:
    """The activation ``energy`` weighed by the cues that ``params`` switches on."""
    result = energy.astype(np.float32)
    if params.skin:
        result = result * cues.skin**params.skin
    if params.contrast:
        result = result * (0.05 + cues.contrast) ** params.contrast
    if params.border:
        result = result * border_window(result.shape, params.border)
    return result


def locating_map(energy: np.ndarray, rgb: np.ndarray, params: RoiParams) -> np.ndarray:
    """The activation ``energy`` (0..1, spanning the photo) weighed by the cues that ``params``
    switches on; ``rgb``: the photo at the energy's size."""
    return weigh(energy, image_cues(rgb, params), params)


def box_from_cam(
    cam: np.ndarray,
    image_size: tuple[int, int],
    threshold: float = CAM_THRESHOLD,
    margin: float = BOX_MARGIN,
    min_side_fraction: float = MIN_SIDE_FRACTION,
) -> Box | None:
    """Box around the connected region of ``cam`` (0..1, any resolution, spanning the whole image)
    that holds its maximum, thresholded at ``threshold`` x max, grown by ``margin`` of its size on
    each side, made square and at least ``min_side_fraction`` of the image's shorter side.
    Returns None when the map is empty (nothing to localise)."""
    peak = float(cam.max())
    if not np.isfinite(peak) or peak <= 0:
        return None
    mask = (cam >= threshold * peak).astype(np.uint8)
    _, labels = cv2.connectedComponents(mask, connectivity=8)
    peak_y, peak_x = np.unravel_index(int(np.argmax(cam)), cam.shape)
    ys, xs = np.nonzero(labels == labels[peak_y, peak_x])
    width, height = image_size
    sx, sy = width / cam.shape[1], height / cam.shape[0]
    x0, x1 = xs.min() * sx, (xs.max() + 1) * sx
    y0, y1 = ys.min() * sy, (ys.max() + 1) * sy
    grow_x, grow_y = margin * (x1 - x0), margin * (y1 - y0)
    x0, x1, y0, y1 = x0 - grow_x, x1 + grow_x, y0 - grow_y, y1 + grow_y
    min_side = min_side_fraction * min(width, height)
    x0, x1 = grow(x0, x1, min_side, width)
    y0, y1 = grow(y0, y1, min_side, height)
    return square_box(x0, y0, x1, y1, image_size)


def energy_maps(energy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(B, H, W) locating maps, 0..1 at ``size`` = (W, H), from the (B, h, w) activation energy
    (:func:`ml.heads.energy`)."""
    return np.stack([scale_cam(scale_cam(e, size)) for e in energy])
