"""Is a crop assessable? Cheap image-quality measures plus an out-of-distribution (OOD) distance.

Everything here works on what the classifier's one pass already has: the resized crop (pixels)
and the pooled backbone features of that crop. No extra forward pass.

- ``too_dark`` / ``too_bright``: mean luminance of the crop outside the training lesions' range.
- ``blank``: luminance standard deviation below the training lesions'.
- ``blurred``: variance of the Laplacian of the crop's luminance (at the model's input size) below
  what almost every training lesion has.
- ``not_skin``: share of skin-coloured pixels (a broad YCrCb range) below the training lesions'.
- ``no_lesion``: mean cosine distance of the crop's pooled features to their ``k`` nearest training
  lesion crops (a bank stored in the checkpoint) above the distance almost every unseen lesion
  crop stayed within in patient-grouped cross-validation.

Every threshold is fitted on training data only (see :func:`fit_quality_thresholds`, the study in
``ml/study.py``) and stored in the checkpoint's ``assessment`` metadata. A checkpoint without it
(older ones, DenseNet-121) gets ``FALLBACK_RULE``: only the fixed luminance limits the portal used
before (too dark, too bright, blank).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

BANK_KEY = "assessment.bank"       # state-dict entry with the (N, D) L2-normalised feature bank
REASONS = ("too_dark", "too_bright", "blank", "blurred", "not_skin", "no_lesion")
FALLBACK_RULE = {"min_brightness": 20.0, "max_brightness": 245.0, "min_contrast": 4.0}
QUALITY_QUANTILE = 0.01             # quality limits: 1st / 99th percentile of the training crops
# A broad skin-colour range in YCrCb (OpenCV order Y, Cr, Cb); dark and light skin alike.
SKIN_CR = (133, 180)
SKIN_CB = (75, 135)


def quality_measures(crop: np.ndarray) -> dict[str, float]:
    """``crop``: uint8 (H, W, 3) RGB at the model's input size -> brightness, contrast, sharpness,
    skin share."""
    grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    ycrcb = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    skin = (cr >= SKIN_CR[0]) & (cr <= SKIN_CR[1]) & (cb >= SKIN_CB[0]) & (cb <= SKIN_CB[1])
    return {"brightness": float(grey.mean()), "contrast": float(grey.std()),
            "sharpness": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
            "skin_share": float(skin.mean())}


def fit_quality_thresholds(measures: list[dict[str, float]], quantile: float = QUALITY_QUANTILE) -> dict:
    """Limits that ``1 - 2 * quantile`` of the training crops (at most) fall outside of."""
    values = {name: np.array([m[name] for m in measures]) for name in measures[0]}
    return {"min_brightness": float(np.quantile(values["brightness"], quantile)),
            "max_brightness": float(np.quantile(values["brightness"], 1 - quantile)),
            "min_contrast": float(np.quantile(values["contrast"], quantile)),
            "min_sharpness": float(np.quantile(values["sharpness"], quantile)),
            "min_skin_share": float(np.quantile(values["skin_share"], quantile))}


def normalise(features: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(features.float(), dim=1)


def knn_distance(features: torch.Tensor, bank: torch.Tensor, k: int) -> np.ndarray:
    """Mean cosine distance of each feature row to its ``k`` nearest rows of ``bank`` (normalised)."""
    similarity = normalise(features) @ bank.float().T
    nearest = similarity.topk(min(k, bank.shape[0]), dim=1).values
    return (1 - nearest.mean(dim=1)).numpy()


@dataclass(frozen=True)
class Assessor:
    """The fitted rule. ``config`` is the checkpoint's ``assessment`` metadata."""
    config: dict
    bank: torch.Tensor | None = None

    @classmethod
    def from_checkpoint(cls, metadata: dict, state: dict) -> "Assessor":
        config = metadata.get("assessment")
        if not config:
            return cls(FALLBACK_RULE)
        if BANK_KEY not in state:
            raise ValueError(f"the checkpoint's assessment rule needs the {BANK_KEY} state entry")
        return cls(config, state[BANK_KEY].float())

    def reasons(self, crops: list[np.ndarray], pooled: torch.Tensor) -> list[str]:
        """"" for an assessable crop, else the first failing check's code (order of ``REASONS``).
        A rule without a given limit skips that check."""
        distances = (knn_distance(pooled, self.bank, int(self.config["knn_k"])) if self.bank is not None
                     else [0.0] * len(crops))
        return [self.reason(quality_measures(crop), distance) for crop, distance in zip(crops, distances)]

    def reason(self, quality: dict[str, float], distance: float) -> str:
        """The first failing check's code for these measures, or ""."""
        c, inf = self.config, float("inf")
        checks = (("too_dark", quality["brightness"] < c.get("min_brightness", -inf)),
                  ("too_bright", quality["brightness"] > c.get("max_brightness", inf)),
                  ("blank", quality["contrast"] < c.get("min_contrast", -inf)),
                  ("blurred", quality["sharpness"] < c.get("min_sharpness", -inf)),
                  ("not_skin", quality["skin_share"] < c.get("min_skin_share", -inf)),
                  ("no_lesion", distance > c.get("max_knn_distance", inf)))
        return next((code for code, failed in checks if failed), "")
