"""Helpers for tests (here and in the portal)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .architectures import get_arch
from .checkpoint import make_metadata, save_checkpoint


def _calibrate_batch_norm(net: nn.Module, input_size: int) -> None:
    """Sets batch-norm statistics from one random batch so a random network's activations (and so
    its Grad-CAM) are not vanishingly small."""
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None            # cumulative average: one batch sets the statistics
    net.train()
    with torch.no_grad():
        net(torch.randn(4, 3, input_size, input_size))
    for norm in norms:
        norm.momentum = 0.1
    net.eval()


def make_random_checkpoint(path: str | Path, arch: str = "densenet121", input_size: int = 64,
                           threshold: float = 0.5, version: str = "test-random") -> Path:
    """Tiny randomly initialised (seeded) checkpoint; predictions are meaningless."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = get_arch(arch).build("none")
        _calibrate_batch_norm(net, input_size)
    metadata = make_metadata(arch=arch, input_size=input_size, threshold=threshold, version=version,
                             init="none", operating_point="random weights, for tests only",
                             training_data="none (random weights)")
    return save_checkpoint(path, net, metadata)
