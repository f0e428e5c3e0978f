"""Everything after the backbone, in plain numpy: the seam between the backbone and the heads.

The backbone is the only network call. It is any :data:`Backbone` callable:

    backbone(x) -> activation
    x:          float32 array (B, 3, S, S), the normalised batch (``ml.preprocess.to_array``; NCHW
                shape, possibly with NHWC strides; call ``np.ascontiguousarray`` if you need them)
    activation: float32 array (B, C, h, w), the target (Grad-CAM) layer's output, BEFORE the head's
                activation (``LesionNet.features(x)``; EfficientNet-Lite0 at 224 px: (B, 1280, 7, 7))

Everything the head does is linear after its activation (ReLU6 / ReLU, spatial mean, linear units),
so the pooled features, the logit, the Grad-CAM and the features of any box of the map follow from
the activation and the head weights alone, without autograd.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

Backbone = Callable[[np.ndarray], np.ndarray]
Cells = tuple[float, float, float, float]  # a box (x0, y0, x1, y1) in activation cells, x1/y1 exclusive


def single_thread_blas() -> None:
    """numpy's BLAS on one thread for the rest of the process (the runtimes' ``configure_threads``).
    The heads' products are tiny, and an idle BLAS pool spins on the cores the next backbone call
    needs: on 2 cores the forward took twice as long right after a numpy product."""
    threadpool_limits(1, user_api="blas")


@dataclass(frozen=True)
class Head:
    """The classifier head: ``logit = weight @ mean(clip(activation, 0, cap)) + bias``."""

    weight: np.ndarray  # (C,) float32
    bias: float
    cap: float  # the activation's upper clip: 6 for ReLU6, inf for ReLU

    def activate(self, activation: np.ndarray) -> np.ndarray:
        return np.clip(activation, 0.0, self.cap)

    def logits(self, pooled: np.ndarray) -> np.ndarray:
        return pooled @ self.weight + self.bias


def cell_weights(box: Cells, shape: tuple[int, int]) -> np.ndarray:
    """(h, w) share of each activation cell inside ``box`` (area overlap, 0..1): the weights of the
    box's area-weighted mean (an exact RoI pooling of a piecewise-constant map)."""
    height, width = shape
    x0, y0, x1, y1 = box
    wx = np.clip(np.minimum(np.arange(1, width + 1), x1) - np.maximum(np.arange(width), x0), 0, 1)
    wy = np.clip(np.minimum(np.arange(1, height + 1), y1) - np.maximum(np.arange(height), y0), 0, 1)
    return np.outer(wy, wx).astype(np.float32)


def pool(activated: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """(B, C) pooled features of the activated map: the spatial mean, or with ``weights`` (B, h, w)
    the weighted mean (one box per row; all-ones weights give the plain mean)."""
    if weights is None:
        return activated.mean(axis=(2, 3))
    return np.einsum("bchw,bhw->bc", activated, weights) / weights.sum(axis=(1, 2))[:, None]


def gradcam(
    activation: np.ndarray, head: Head, weights: np.ndarray | None = None, target: str = "positive"
) -> np.ndarray:
    """(B, h, w) raw Grad-CAM (not yet scaled) of the logit of the (weighted) pooled features.

    d logit / d A[c, i, j] = w_c * m_ij / sum(m) * [0 < A[c, i, j] < cap] (m: the pooling weights,
    all ones for the plain mean), so the channel weight, the spatial mean of that gradient, is
    w_c * sum_ij(m_ij [0 < A < cap]) / (sum(m) h w). ``target="predicted"`` explains the predicted
    class (the logit times its sign)."""
    batch, _, height, width = activation.shape
    m = np.ones((batch, height, width), np.float32) if weights is None else weights
    passes = ((activation > 0) & (activation < head.cap)).astype(np.float32)
    alpha = head.weight[None, :] * np.einsum("bchw,bhw->bc", passes, m) / (m.sum(axis=(1, 2))[:, None] * height * width)
    if target == "predicted":
        alpha = alpha * np.sign(head.logits(pool(head.activate(activation), weights)))[:, None]
    return np.maximum(np.einsum("bc,bchw->bhw", alpha, activation), 0.0).astype(np.float32)


def energy(activated: np.ndarray) -> np.ndarray:
    """(B, h, w) class-agnostic activation energy: the channel sum of the activated map."""
    return activated.sum(axis=1)
