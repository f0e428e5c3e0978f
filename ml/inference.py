"""The inference API used by the portal: a runtime's ``load`` (``ml.torch_runtime`` or ``ml.ort``) ->
:class:`LesionModel` -> :class:`Analysis`. No torch here: the backbone is whatever callable the
runtime gives (:data:`ml.heads.Backbone`), everything after it is numpy."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image, ImageDraw

from .assessment import Assessor
from .boxes import Box, clamp_box
from .differential import Differential
from .gradcam import scale_cam
from .heads import Backbone, Cells, Head, cell_weights, energy, gradcam, pool
from .preprocess import crop_resize, to_array
from .roi import AUTO_ROI, RoiParams, box_from_cam, energy_maps, locating_map


@dataclass
class Analysis:
    probability: float  # P(positive class), 0..1
    heatmap: np.ndarray  # float32 (H, W) of the photo (scaled to heatmap_max_side), 0..1
    roi: Box | None  # box the model looked at, full-photo pixels (None = whole photo)
    roi_source: str  # "given" | "auto" | "none"
    timings_ms: dict[str, float] = field(default_factory=dict)
    assessable: bool = True  # False: the photo cannot be judged (see ``reason``)
    reason: str = ""  # machine code why not assessable ("" when assessable)
    # class -> probability over the differential diagnoses ({} for a checkpoint without one);
    # its "mpox" entry is ``probability``
    differential: dict[str, float] = field(default_factory=dict)
    # False: ``roi`` is shown only (the automatic ROI of ``AUTO_ROI``); the whole photo was scored
    roi_scored: bool = True


@dataclass(frozen=True)
class Score:
    """What :meth:`LesionModel.predict` gives per photo (no heatmap)."""

    probability: float
    assessable: bool
    reason: str


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


def cells_of(box: Box, image_size: tuple[int, int], shape: tuple[int, int]) -> Cells:
    """A full-photo box in the cells of the whole photo's (h, w) activation map."""
    sx, sy = shape[1] / image_size[0], shape[0] / image_size[1]
    return box[0] * sx, box[1] * sy, box[2] * sx, box[3] * sy


def _box(energy_map: np.ndarray, rgb: np.ndarray, image_size: tuple[int, int], params: RoiParams) -> Box | None:
    """The automatic ROI of one photo from its locating pass's energy map and the photo at that size."""
    located = locating_map(energy_map, rgb, params)
    return box_from_cam(located, image_size, params.threshold, min_side_fraction=params.min_side_fraction)


class LesionModel:
    """A loaded checkpoint ready for inference: its ``backbone`` (the one network call, from the
    runtime that loaded it: ``ml.torch_runtime`` or ``ml.ort``), its linear ``head`` and the rest.

    One backbone pass per photo: a photo with a given box is classified and explained from its
    crop; a photo without one from the whole photo, where (with ``auto_roi``) the same pass's
    activation also finds the lesion box. With the shipped ``AUTO_ROI`` the probability,
    differential, assessability and Grad-CAM stay the whole photo's and the box shows where the
    lesion is; with ``score_box`` they come from the box's cells of the map (:mod:`ml.heads`).
    Everything after the backbone is numpy. ``assessor``: the checkpoint's assessability rule (None: every crop is
    assessable). ``differential``: the checkpoint's differential head (None: no differential).
    The probability is the checkpoint's calibration (``metadata["calibration"]``: Platt ``a``,
    ``b``) applied to the logit; the heatmap explains the logit (the same map, as ``a`` > 0).
    """

    def __init__(
        self,
        metadata: dict,
        backbone: Backbone,
        head: Head,
        auto_roi: bool = True,
        assessor: Assessor | None = None,
        differential: Differential | None = None,
        roi_params: RoiParams = AUTO_ROI,
    ):
        self.metadata = metadata
        self.backbone = backbone
        self.head = head
        self.auto_roi = auto_roi
        self.assessor = assessor
        self.differential = differential
        self.roi_params = roi_params
        calibration = metadata.get("calibration") or {}
        self._platt = (float(calibration.get("a", 1.0)), float(calibration.get("b", 0.0)))

    version = property(lambda self: self.metadata["version"])
    arch = property(lambda self: self.metadata["arch"])
    threshold = property(lambda self: float(self.metadata["threshold"]))
    input_size = property(lambda self: int(self.metadata["input_size"]))

    def _crops(self, images: Sequence[Image.Image], rois: Sequence[Box | None], size: int | None = None) -> list:
        return [crop_resize(im, roi, size or self.input_size) for im, roi in zip(images, rois)]

    def _array(self, crops: Sequence[Image.Image]) -> np.ndarray:
        return to_array(crops, self.metadata["mean"], self.metadata["std"])

    def probability(self, logits: np.ndarray) -> np.ndarray:
        """Calibrated P(positive) from logits."""
        a, b = self._platt
        return 1.0 / (1.0 + np.exp(-(a * np.asarray(logits, dtype=np.float64) + b)))

    def _differentials(self, pooled: np.ndarray, probabilities) -> list[dict[str, float]]:
        if self.differential is None:
            return [{} for _ in probabilities]
        return self.differential.probabilities(pooled, probabilities)

    def _reasons(self, crops: list[np.ndarray], pooled: np.ndarray) -> list[str]:
        return self.assessor.reasons(crops, pooled) if self.assessor else [""] * len(crops)

    def locate(
        self, activated: np.ndarray, rgb: np.ndarray, image_size: tuple[int, int], params: RoiParams
    ) -> Box | None:
        """The lesion box (full-photo pixels; None where the locating map is empty) from one
        whole photo's activated map (C, h, w) and the photo at the map's input size (``rgb``)."""
        return _box(energy_maps(energy(activated[None]), (rgb.shape[1], rgb.shape[0]))[0], rgb, image_size, params)

    def energy_maps(self, images: Sequence[Image.Image], size: int) -> tuple[np.ndarray, list[np.ndarray]]:
        """The whole photos' activation energy at ``size`` x ``size`` (B, size, size), 0..1, and the
        photos at that size (uint8 RGB): a separate locating pass (see :mod:`ml.roi`)."""
        crops = [np.asarray(c) for c in self._crops(images, [None] * len(images), size)]
        return energy_maps(energy(self.head.activate(self.backbone(self._array(crops)))), (size, size)), crops

    def locating_pass_rois(self, images: Sequence[Image.Image], params: RoiParams) -> list[Box | None]:
        """The automatic ROI of a separate whole-photo pass at ``params.locate_size`` (the
        two-pass method before issue 26; research comparisons and the lesion-check renders)."""
        maps, crops = self.energy_maps(images, params.locate_size)
        return [_box(m, c, im.size, params) for m, c, im in zip(maps, crops, images)]

    def analyse_batch(
        self,
        images: Sequence[Image.Image],
        rois: Sequence[Box | None] | None = None,
        heatmap_max_side: int | None = None,
    ) -> list[Analysis]:
        """All photos of a case in one batch: one backbone pass per photo.

        The model always crops from the full-resolution photo. ``heatmap_max_side`` caps the
        heatmap's longer side (same aspect as the photo): a phone's 12 MP heatmap and overlay cost
        far more than the model itself and show nothing more on a screen."""
        start = time.perf_counter()
        images = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        rois = list(rois) if rois is not None else [None] * len(images)
        if len(rois) != len(images):
            raise ValueError("need one roi (or None) per image")
        boxes = [clamp_box(r, im.size) if r is not None else None for r, im in zip(rois, images)]
        sources = ["given" if r is not None else "none" for r in rois]
        crops = [np.asarray(c) for c in self._crops(images, boxes)]
        activation = self.backbone(self._array(crops))
        activated = self.head.activate(activation)
        shape = activation.shape[2:]
        weights = np.ones((len(images), *shape), np.float32)
        roi_start = time.perf_counter()
        for i in [i for i, r in enumerate(rois) if r is None] if self.auto_roi else []:
            box = self.locate(activated[i], crops[i], images[i].size, self.roi_params)
            if box is not None:
                boxes[i], sources[i] = box, "auto"
                if self.roi_params.score_box:
                    weights[i] = cell_weights(cells_of(box, images[i].size, shape), shape)
                    crops[i] = np.asarray(crop_resize(images[i], box, self.input_size))
        roi_ms = _ms(roi_start)
        pooled = pool(activated, weights)
        probabilities = self.probability(self.head.logits(pooled)).tolist()
        reasons = self._reasons(crops, pooled)
        differentials = self._differentials(pooled, probabilities)
        cams = gradcam(activation, self.head, weights)
        model_ms = _ms(start)

        heatmap_start = time.perf_counter()
        # The box each score came from (None: the whole photo): the heatmap explains that score.
        scored = [None if s == "auto" and not self.roi_params.score_box else b for b, s in zip(boxes, sources)]
        heatmaps = [
            map_to_image(self._box_cam(cam, box if source == "auto" else None, im.size), box, im.size, heatmap_max_side)
            for cam, box, source, im in zip(cams, scored, sources, images)
        ]
        timings = {
            "roi": roi_ms,
            "model": model_ms - roi_ms,
            "heatmap": _ms(heatmap_start),
            "total": _ms(start),
            "batch_size": float(len(images)),
        }
        return [
            Analysis(p, h, b, s, dict(timings), not reason, reason, d, roi_scored=b is None or box is not None)
            for p, h, b, s, reason, d, box in zip(
                probabilities, heatmaps, boxes, sources, reasons, differentials, scored
            )
        ]

    def _box_cam(self, cam: np.ndarray, box: Box | None, image_size: tuple[int, int]) -> np.ndarray:
        """The pass's Grad-CAM at the input size, 0..1; with ``box`` (a box found in the whole
        photo's map) the part inside the box, scaled again."""
        size = self.input_size
        full = scale_cam(cam, (size, size))
        if box is None:
            return scale_cam(full)
        x0, y0, x1, y1 = (round(v) for v in cells_of(box, image_size, (size, size)))
        return scale_cam(full[y0 : max(y1, y0 + 1), x0 : max(x1, x0 + 1)])

    def explain(self, x: np.ndarray, target: str = "positive") -> tuple[np.ndarray, np.ndarray]:
        """(logits (B,), Grad-CAMs (B, S, S) 0..1) of a normalised batch (:func:`ml.preprocess.to_array`)
        in one pass. ``target="positive"`` explains the positive-class logit; ``"predicted"`` the
        predicted class (the logit times its sign), which also localises lesions called negative."""
        activation = self.backbone(x)
        logits = self.head.logits(pool(self.head.activate(activation)))
        size = (x.shape[3], x.shape[2])
        return logits, np.stack([scale_cam(scale_cam(c, size)) for c in gradcam(activation, self.head, target=target)])

    def analyse(self, image: Image.Image, roi: Box | None = None, heatmap_max_side: int | None = None) -> Analysis:
        return self.analyse_batch([image], [roi], heatmap_max_side)[0]

    def warm_up(self) -> LesionModel:
        """Runs one small analysis, so the first real request does not pay the runtime's one-off
        start-up costs (about a second for torch on this machine)."""
        self.analyse(Image.new("RGB", (self.input_size, self.input_size), (128, 128, 128)))
        return self

    def predict(self, images: Sequence[Image.Image], rois: Sequence[Box | None]) -> list[Score]:
        """Probability and assessability of each crop without the heatmap (one pass; for
        evaluation). ``rois`` entries may be None (whole photo; no automatic ROI here)."""
        crops = [np.asarray(c) for c in self._crops([im.convert("RGB") for im in images], rois)]
        pooled = pool(self.head.activate(self.backbone(self._array(crops))))
        reasons = self._reasons(crops, pooled)
        probabilities = self.probability(self.head.logits(pooled))
        return [Score(float(p), not reason, reason) for p, reason in zip(probabilities, reasons)]

    def predict_proba(self, images: Sequence[Image.Image], rois: Sequence[Box | None]) -> np.ndarray:
        """Probabilities only (as :meth:`predict`); ``rois`` entries may be None."""
        return np.array([score.probability for score in self.predict(images, rois)])


def heatmap_size(image_size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """(width, height) of the photo scaled down so its longer side is at most ``max_side``."""
    width, height = image_size
    scale = min(1.0, max_side / max(width, height)) if max_side else 1.0
    return max(1, round(width * scale)), max(1, round(height * scale))


def map_to_image(
    cam: np.ndarray, box: Box | None, image_size: tuple[int, int], max_side: int | None = None
) -> np.ndarray:
    """Places a crop's heatmap into a zero map of the photo (float32, 0..1), at most ``max_side``."""
    width, height = heatmap_size(image_size, max_side)
    if box is not None and (width, height) != image_size:
        sx, sy = width / image_size[0], height / image_size[1]
        x0, y0 = min(int(box[0] * sx), width - 1), min(int(box[1] * sy), height - 1)
        box = (x0, y0, max(x0 + 1, round(box[2] * sx)), max(y0 + 1, round(box[3] * sy)))
    if box is None:
        return np.clip(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR), 0, 1)
    x0, y0, x1, y1 = box
    full = np.zeros((height, width), dtype=np.float32)
    full[y0:y1, x0:x1] = np.clip(cv2.resize(cam, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR), 0, 1)
    return full


def heatmap_overlay(
    image: Image.Image, heatmap: np.ndarray, roi: Box | None = None, image_weight: float = 0.5
) -> Image.Image:
    """Jet-coloured heatmap blended over a photo of the heatmap's size (as pytorch-grad-cam's
    ``show_cam_on_image``), with the ROI box drawn when given. Returns an RGB image."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    if heatmap.shape != rgb.shape[:2]:
        raise ValueError(f"heatmap shape {heatmap.shape} != image shape {rgb.shape[:2]}")
    colour = cv2.applyColorMap(np.uint8(255 * np.clip(heatmap, 0, 1)), cv2.COLORMAP_JET)
    colour = cv2.cvtColor(colour, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    blend = (1 - image_weight) * colour + image_weight * rgb
    overlay = Image.fromarray(np.uint8(255 * blend / np.max(blend)))
    if roi is not None:
        line = max(2, min(overlay.size) // 150)
        ImageDraw.Draw(overlay).rectangle(list(roi), outline=(255, 255, 255), width=line)
    return overlay


def display_copy(image: Image.Image, max_side: int | None) -> Image.Image:
    """The photo at display size (longer side at most ``max_side``, the heatmap's size): a fast
    integer box-filter reduce first, then an exact resize. The one place that sizes for display."""
    size = heatmap_size(image.size, max_side)
    if size == image.size:
        return image
    factor = min(image.width // size[0], image.height // size[1])
    small = image.reduce(factor) if factor > 1 else image
    return small if small.size == size else small.resize(size, Image.Resampling.BILINEAR)


def overlay(image: Image.Image, analysis: Analysis) -> Image.Image:
    """The analysis's heatmap over the full-size photo it came from, with the ROI it used, at the
    heatmap's (display) size. Owns resizing the photo and scaling the box."""
    height, width = analysis.heatmap.shape
    screen = display_copy(image.convert("RGB"), max(width, height))
    if screen.size != (width, height):
        screen = screen.resize((width, height), Image.Resampling.BILINEAR)
    roi = None
    if analysis.roi is not None:
        scale = width / image.width
        roi = tuple(round(value * scale) for value in analysis.roi)
    return heatmap_overlay(screen, analysis.heatmap, roi=roi)
