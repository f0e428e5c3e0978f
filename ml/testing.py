"""Helpers for tests (here and in the portal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from .architectures import get_arch
from .assessment import BANK_KEY, fit_quality_thresholds, knn_distance, normalise, quality_measures
from .checkpoint import make_metadata, save_checkpoint
from .differential import BIAS_KEY, WEIGHT_KEY
from .preprocess import crop_resize, to_batch


def _calibrate_batch_norm(net: nn.Module, input_size: int) -> None:
    """Sets batch-norm statistics from one random batch so a random network's activations (and so
    its Grad-CAM) are not vanishingly small."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: one batch sets the statistics
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 3, input_size, input_size))
    for norm in norms:
        norm.momentum = 0.1
    net.eval()


def make_random_checkpoint(
    path: str | Path,
    arch: str = "densenet121",
    input_size: int = 64,
    threshold: float = 0.5,
    version: str = "test-random",
    assessable_examples: list | None = None,
    calibration: dict | None = None,
    differential_classes: tuple[str, ...] | None = None,
) -> Path:
    """Tiny randomly initialised (seeded) checkpoint; predictions are meaningless.

    ``assessable_examples`` (PIL images): fit an assessability rule on them as ``ml.research.study`` does on
    the training crops, with room for a handful of examples: quality limits at half their lowest
    (and 1.1 x their highest brightness), kNN bank of their features, distance limit just above
    the largest nearest-other-example distance. Without it the checkpoint has
    no rule (the fallback luminance limits apply). ``calibration``: Platt ``{"a": .., "b": ..}``.
    ``differential_classes``: add a random differential head over these classes (mpox among them)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = get_arch(arch).build("none")
        _calibrate_batch_norm(net, input_size)
    extra, rule = {}, None
    if assessable_examples:
        extra, rule = _fit_rule(net, get_arch(arch), assessable_examples, input_size)
    if differential_classes:
        generator = torch.Generator().manual_seed(1)
        width = net.head.fc.in_features
        extra[WEIGHT_KEY] = torch.randn(len(differential_classes), width, generator=generator) / width**0.5
        extra[BIAS_KEY] = torch.zeros(len(differential_classes))
    metadata = make_metadata(
        arch=arch,
        input_size=input_size,
        threshold=threshold,
        version=version,
        init="none",
        operating_point="random weights, for tests only",
        training_data="none (random weights)",
        calibration=calibration,
        **({"assessment": rule} if rule else {}),
        **({"differential": {"classes": list(differential_classes)}} if differential_classes else {}),
    )
    return save_checkpoint(path, net, metadata, extra_state=extra)


def _fit_rule(net, spec, examples, input_size):
    crops = [crop_resize(im.convert("RGB"), None, input_size) for im in examples]
    with torch.inference_mode():
        pooled = net.pooled(net.features(to_batch(crops, spec.mean, spec.std)))
    bank = normalise(pooled)
    nearest_other = (
        [float(knn_distance(pooled[i : i + 1], torch.cat([bank[:i], bank[i + 1 :]]), 1)[0]) for i in range(len(crops))]
        if len(crops) > 1
        else [0.0]
    )
    limits = fit_quality_thresholds([quality_measures(np.asarray(c)) for c in crops], quantile=0.0)
    limits = {
        name: min(255.0, value * 1.1) if name.startswith("max") else value * 0.5 for name, value in limits.items()
    }
    rule = {"knn_k": 1, "max_knn_distance": max(nearest_other) * 1.05 + 1e-4, **limits, "fitted_on": "test examples"}
    return {BANK_KEY: bank}, rule
