"""Grad-CAM scaling, as pytorch-grad-cam's ``GradCAM`` does it.

The raw map (channel weights = spatial mean of d logit / d activation, weighted channel sum, ReLU)
comes from the forward's activation and the head's weights, without autograd
(:func:`ml.heads.gradcam`); this scales it: min-max to 0..1, bilinear upsampling, min-max again.
Tests check the result equals pytorch-grad-cam's.
"""

from __future__ import annotations

import cv2
import numpy as np


def scale_cam(cam: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Min-max scale a 2-D map to 0..1 and optionally resize it to ``size`` = (width, height)."""
    cam = cam - cam.min()
    cam = cam / (1e-7 + cam.max())
    if size is not None:
        cam = cv2.resize(np.float32(cam), size, interpolation=cv2.INTER_LINEAR)
    return np.float32(cam)
