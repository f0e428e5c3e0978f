"""Fast Grad-CAM: one forward and a backward through the head only.

The backbone (``net.features``, which ends at the target layer) runs under ``inference_mode``; the
target activation is then the only tensor that requires grad, so the backward pass touches the
pooling head alone and no parameter gradient is ever formed. The maths is pytorch-grad-cam's
``GradCAM`` (channel weights = spatial mean of d logit / d activation, weighted sum, ReLU, min-max
scaling, bilinear upsampling, min-max again); tests check the two agree.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from .architectures import LesionNet


def scale_cam(cam: np.ndarray, size: tuple[int, int] | None = None) -> np.ndarray:
    """Min-max scale a 2-D map to 0..1 and optionally resize it to ``size`` = (width, height)."""
    cam = cam - cam.min()
    cam = cam / (1e-7 + cam.max())
    if size is not None:
        cam = cv2.resize(np.float32(cam), size, interpolation=cv2.INTER_LINEAR)
    return np.float32(cam)


def fast_gradcam(
    net: LesionNet, x: torch.Tensor, target: str = "positive", with_pooled: bool = False
) -> tuple[torch.Tensor, np.ndarray] | tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Returns (logits (B,), cams (B, H, W) float32 0..1 at the input resolution), and with
    ``with_pooled`` also the pooled features (B, D) of the same pass (the head's input; the
    assessability check's OOD distance uses them, so it costs no extra forward).

    ``target="positive"`` explains the positive-class logit; ``"predicted"`` explains the predicted
    class (the logit times its sign), which also localises lesions the model calls negative.
    """
    with torch.inference_mode():
        activation = net.features(x)
    with torch.inference_mode(False), torch.enable_grad():
        activation = activation.clone().requires_grad_(True)  # a normal (non-inference) leaf
        pooled = net.pooled(activation)
        logits = net.head.fc(net.head.dropout(pooled))[:, 0]
        objective = logits if target == "positive" else logits * torch.sign(logits.detach())
        (grad,) = torch.autograd.grad(objective.sum(), activation)
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cams = torch.relu((weights * activation.detach()).sum(dim=1)).numpy()
    height, width = x.shape[-2:]
    scaled = np.stack([scale_cam(scale_cam(cam, (width, height))) for cam in cams])
    if with_pooled:
        return logits.detach(), scaled, pooled.detach()
    return logits.detach(), scaled
