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
  crop stayed within in patient-grouped cross-validation; or (checkpoints with a lesion check) the
  lesion-present score, a second linear unit on the same pooled features trained to tell lesion
  crops from crops of rendered lesion-free photos (``ml.research.study``), below the score almost
  every unseen lesion crop reached.

Every threshold is fitted on training data only (see :func:`fit_quality_thresholds`, the study in
``ml/research/study.py``) and stored in the checkpoint's ``assessment`` metadata. A checkpoint without it
(older ones, DenseNet-121) gets ``FALLBACK_RULE``: only the fixed luminance limits the portal used
before (too dark, too bright, blank).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    import torch

BANK_KEY = "assessment.bank"  # state-dict entry with the (N, D) L2-normalised feature bank
LESION_KEY = "assessment.lesion_weight"  # state-dict entry with the (D,) lesion-present weights
REASONS = ("too_dark", "too_bright", "blank", "blurred", "not_skin", "no_lesion")
FALLBACK_RULE = {"min_brightness": 20.0, "max_brightness": 245.0, "min_contrast": 4.0}
QUALITY_QUANTILE = 0.01  # quality limits: 1st / 99th percentile of the training crops
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
    return {
        "brightness": float(grey.mean()),
        "contrast": float(grey.std()),
        "sharpness": float(cv2.Laplacian(grey, cv2.CV_32F).var()),
        "skin_share": float(skin.mean()),
    }


def fit_quality_thresholds(measures: list[dict[str, float]], quantile: float = QUALITY_QUANTILE) -> dict:
    """Limits that ``1 - 2 * quantile`` of the training crops (at most) fall outside of."""
    values = {name: np.array([m[name] for m in measures]) for name in measures[0]}
    return {
        "min_brightness": float(np.quantile(values["brightness"], quantile)),
        "max_brightness": float(np.quantile(values["brightness"], 1 - quantile)),
        "min_contrast": float(np.quantile(values["contrast"], quantile)),
        "min_sharpness": float(np.quantile(values["sharpness"], quantile)),
        "min_skin_share": float(np.quantile(values["skin_share"], quantile)),
    }


def normalise(features: torch.Tensor) -> torch.Tensor:
    """L2-normalised rows of a feature tensor (fitting a bank; torch imported here, see
    :func:`ml.preprocess.to_batch`)."""
    import torch

    return torch.nn.functional.normalize(features.float(), dim=1)


def knn_distance(features, bank, k: int) -> np.ndarray:
    """Mean cosine distance of each feature row to its ``k`` nearest rows of ``bank`` (normalised);
    numpy arrays or CPU tensors."""
    features = np.asarray(features, dtype=np.float32)
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    similarity = features @ np.asarray(bank, dtype=np.float32).T
    k = min(k, similarity.shape[1])
    nearest = -np.partition(-similarity, k - 1, axis=1)[:, :k]
    return 1 - nearest.mean(axis=1)


def lesion_score(features, weight, bias: float) -> np.ndarray:
    """The lesion-present score (a logit) of each pooled feature row: ``features @ weight + bias``."""
    return np.asarray(features, dtype=np.float32) @ np.asarray(weight, dtype=np.float32) + bias


@dataclass(frozen=True)
class Assessor:
    """The fitted rule. ``config`` is the checkpoint's ``assessment`` metadata."""

    config: dict
    bank: np.ndarray | None = None  # (N, D) float32, L2-normalised rows
    lesion_weight: np.ndarray | None = None  # (D,) float32

    @classmethod
    def from_checkpoint(cls, metadata: dict, state: dict) -> Assessor:
        config = metadata.get("assessment")
        if not config:
            return cls(FALLBACK_RULE)
        needed = [BANK_KEY] + ([LESION_KEY] if "min_lesion_score" in config else [])
        missing = [key for key in needed if key not in state]
        if missing:
            raise ValueError(f"the checkpoint's assessment rule needs the {', '.join(missing)} state entry")
        lesion_weight = np.asarray(state[LESION_KEY], dtype=np.float32) if LESION_KEY in state else None
        return cls(config, np.asarray(state[BANK_KEY], dtype=np.float32), lesion_weight)

    def reasons(self, crops: list[np.ndarray], pooled: np.ndarray) -> list[str]:
        """ "" for an assessable crop, else the first failing check's code (order of ``REASONS``).
        A rule without a given limit skips that check."""
        distances = (
            knn_distance(pooled, self.bank, int(self.config["knn_k"])) if self.bank is not None else [0.0] * len(crops)
        )
        lesion_scores = (
            lesion_score(pooled, self.lesion_weight, float(self.config["lesion_bias"]))
            if self.lesion_weight is not None
            else [float("inf")] * len(crops)
        )
        return [
            self.reason(quality_measures(crop), distance, score)
            for crop, distance, score in zip(crops, distances, lesion_scores)
        ]

    def reason(self, quality: dict[str, float], distance: float, lesion: float = float("inf")) -> str:
        """The first failing check's code for these measures (``lesion``: the lesion-present
        score), or ""."""
        c, inf = self.config, float("inf")
        checks = (
            ("too_dark", quality["brightness"] < c.get("min_brightness", -inf)),
            ("too_bright", quality["brightness"] > c.get("max_brightness", inf)),
            ("blank", quality["contrast"] < c.get("min_contrast", -inf)),
            ("blurred", quality["sharpness"] < c.get("min_sharpness", -inf)),
            ("not_skin", quality["skin_share"] < c.get("min_skin_share", -inf)),
            ("no_lesion", distance > c.get("max_knn_distance", inf) or lesion < c.get("min_lesion_score", -inf)),
        )
        return next((code for code, failed in checks if failed), "")
