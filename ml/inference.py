"""The inference API used by the portal: ``load`` -> :class:`LesionModel` -> :class:`Analysis`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw

from .architectures import LesionNet
from .assessment import Assessor
from .boxes import Box, clamp_box
from .checkpoint import build_network, read_checkpoint
from .differential import Differential
from .gradcam import fast_gradcam
from .preprocess import crop_resize, to_batch
from .roi import AUTO_ROI, RoiParams, activation_energy, box_from_cam, locating_map


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


@dataclass(frozen=True)
class Score:
    """What :meth:`LesionModel.predict` gives per photo (no heatmap)."""

    probability: float
    assessable: bool
    reason: str


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0


class LesionModel:
    """A loaded checkpoint ready for inference (CPU, eval mode, frozen parameters, channels_last).

    ``auto_roi``: photos analysed without a box get an automatic lesion ROI (two passes: the whole
    photo's activation energy gives the box, the second pass classifies and explains the crop).
    ``assessor``: the checkpoint's assessability rule (None: every crop is assessable).
    ``differential``: the checkpoint's differential head (None: no differential).
    The probability is the checkpoint's calibration (``metadata["calibration"]``: Platt ``a``,
    ``b``) applied to the logit; the heatmap explains the logit (the same map, as ``a`` > 0).
    """

    def __init__(
        self,
        net: LesionNet,
        metadata: dict,
        auto_roi: bool = True,
        assessor: Assessor | None = None,
        differential: Differential | None = None,
    ):
        self.net = net.eval().to(memory_format=torch.channels_last)
        for param in self.net.parameters():
            param.requires_grad_(False)
        self.metadata = metadata
        self.auto_roi = auto_roi
        self.assessor = assessor
        self.differential = differential
        calibration = metadata.get("calibration") or {}
        self._platt = (float(calibration.get("a", 1.0)), float(calibration.get("b", 0.0)))

    version = property(lambda self: self.metadata["version"])
    arch = property(lambda self: self.metadata["arch"])
    threshold = property(lambda self: float(self.metadata["threshold"]))
    input_size = property(lambda self: int(self.metadata["input_size"]))

    def _batch(
        self, images: Sequence[Image.Image], rois: Sequence[Box | None], size: int | None = None
    ) -> torch.Tensor:
        return self._crops_and_batch(images, rois, size)[1]

    def _crops_and_batch(
        self, images: Sequence[Image.Image], rois: Sequence[Box | None], size: int | None = None
    ) -> tuple[list[np.ndarray], torch.Tensor]:
        crops = [crop_resize(im, roi, size or self.input_size) for im, roi in zip(images, rois)]
        return ([np.asarray(c) for c in crops], to_batch(crops, self.metadata["mean"], self.metadata["std"]))

    def probability(self, logits: torch.Tensor) -> np.ndarray:
        """Calibrated P(positive) from logits."""
        a, b = self._platt
        return torch.sigmoid(a * logits + b).numpy()

    def _differentials(self, pooled: torch.Tensor, probabilities) -> list[dict[str, float]]:
        if self.differential is None:
            return [{} for _ in probabilities]
        return self.differential.probabilities(pooled, probabilities)

    def _reasons(self, crops: list[np.ndarray], pooled: torch.Tensor) -> list[str]:
        return self.assessor.reasons(crops, pooled) if self.assessor else [""] * len(crops)

    def activation_maps(self, images: Sequence[Image.Image], size: int | None = None) -> np.ndarray:
        """The whole photos' activation energy (B, size, size), 0..1; see :mod:`ml.roi`."""
        return activation_energy(self.net, self._batch(images, [None] * len(images), size))

    def auto_rois(self, images: Sequence[Image.Image], params: RoiParams = AUTO_ROI) -> list[Box | None]:
        """Automatic ROI per photo (None where the locating map is empty); see :mod:`ml.roi`."""
        maps = self.activation_maps(images, params.locate_size)
        return [
            box_from_cam(
                locating_map(m, im, params), im.size, params.threshold, min_side_fraction=params.min_side_fraction
            )
            for m, im in zip(maps, images)
        ]

    def analyse_batch(
        self,
        images: Sequence[Image.Image],
        rois: Sequence[Box | None] | None = None,
        heatmap_max_side: int | None = None,
    ) -> list[Analysis]:
        """All photos of a case in one batch (two batches when some need an automatic ROI).

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
        pending = [i for i, r in enumerate(rois) if r is None] if self.auto_roi else []
        if pending:
            for i, box in zip(pending, self.auto_rois([images[i] for i in pending])):
                if box is not None:
                    boxes[i], sources[i] = box, "auto"
        roi_ms = _ms(start)

        model_start = time.perf_counter()
        crops, x = self._crops_and_batch(images, boxes)
        logits, cams, pooled = fast_gradcam(self.net, x, with_pooled=True)
        probabilities = self.probability(logits).tolist()
        reasons = self._reasons(crops, pooled)
        differentials = self._differentials(pooled, probabilities)
        model_ms = _ms(model_start)

        heatmap_start = time.perf_counter()
        heatmaps = [map_to_image(cam, box, im.size, heatmap_max_side) for cam, box, im in zip(cams, boxes, images)]
        timings = {
            "roi": roi_ms,
            "model": model_ms,
            "heatmap": _ms(heatmap_start),
            "total": _ms(start),
            "batch_size": float(len(images)),
        }
        return [
            Analysis(p, h, b, s, dict(timings), assessable=not reason, reason=reason, differential=d)
            for p, h, b, s, reason, d in zip(probabilities, heatmaps, boxes, sources, reasons, differentials)
        ]

    def analyse(self, image: Image.Image, roi: Box | None = None, heatmap_max_side: int | None = None) -> Analysis:
        return self.analyse_batch([image], [roi], heatmap_max_side)[0]

    def predict(self, images: Sequence[Image.Image], rois: Sequence[Box | None]) -> list[Score]:
        """Probability and assessability without the heatmap (one plain forward; for evaluation).
        ``rois`` entries may be None (whole photo; no automatic ROI here)."""
        crops, x = self._crops_and_batch([im.convert("RGB") for im in images], rois)
        with torch.inference_mode():
            pooled = self.net.pooled(self.net.features(x))
            logits = self.net.head.fc(pooled)[:, 0]
        reasons = self._reasons(crops, pooled)
        return [Score(float(p), not reason, reason) for p, reason in zip(self.probability(logits), reasons)]

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


def load(checkpoint_path: str | Path, auto_roi: bool = True, warmup: bool = True) -> LesionModel:
    """Loads a checkpoint (no downloads). Raises :class:`ml.CheckpointError` on a bad file.
    ``warmup`` runs one small analysis so the first real request does not pay the one-off
    start-up cost of the kernels (about a second on this machine)."""
    metadata, state = read_checkpoint(checkpoint_path)
    model = LesionModel(
        build_network(metadata, state),
        metadata,
        auto_roi=auto_roi,
        assessor=Assessor.from_checkpoint(metadata, state),
        differential=Differential.from_checkpoint(metadata, state),
    )
    if warmup:
        model.analyse(Image.new("RGB", (model.input_size, model.input_size), (128, 128, 128)))
    return model


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


def configure_threads(n: int) -> None:
    """Sets torch's intra-op thread count for this process (call once per worker)."""
    torch.set_num_threads(max(1, int(n)))
