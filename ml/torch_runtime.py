"""The PyTorch runtime (``ML_RUNTIME=torch``; research, training and tests): a checkpoint's network
as the :data:`ml.heads.Backbone` of a :class:`ml.LesionModel`.

    model = ml.load(path)    # this module's load
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .architectures import LesionNet
from .assessment import Assessor
from .checkpoint import build_network, read_checkpoint
from .differential import Differential
from .heads import Head, single_thread_blas
from .inference import LesionModel


class TorchBackbone:
    """The network's ``features`` as a :data:`ml.heads.Backbone` (eval mode, frozen parameters,
    channels_last, ``inference_mode``). ``net`` is the whole network (for research and tests)."""

    def __init__(self, net: LesionNet):
        self.net = net.eval().to(memory_format=torch.channels_last)
        for param in self.net.parameters():
            param.requires_grad_(False)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.net.features(torch.from_numpy(x)).numpy()


def network_head(net: LesionNet) -> Head:
    """The numpy :class:`ml.heads.Head` of ``net`` (its activation's cap and its one logit unit)."""
    act = net.head.act
    cap = float(act.max_val) if isinstance(act, torch.nn.Hardtanh) else float("inf")
    fc = net.head.fc
    return Head(fc.weight.detach()[0].float().numpy().copy(), float(fc.bias.detach()[0]), cap)


def torch_model(net: LesionNet, metadata: dict, **options) -> LesionModel:
    """A :class:`ml.LesionModel` running ``net``; ``options`` as the model's (auto_roi, assessor, ...)."""
    return LesionModel(metadata, TorchBackbone(net), network_head(net), **options)


def load(checkpoint_path: str | Path, auto_roi: bool = True, warmup: bool = True) -> LesionModel:
    """Loads a checkpoint (no downloads). Raises :class:`ml.CheckpointError` on a bad file.
    ``warmup``: see :meth:`ml.LesionModel.warm_up`."""
    metadata, state = read_checkpoint(checkpoint_path)
    model = torch_model(
        build_network(metadata, state),
        metadata,
        auto_roi=auto_roi,
        assessor=Assessor.from_checkpoint(metadata, state),
        differential=Differential.from_checkpoint(metadata, state),
    )
    return model.warm_up() if warmup else model


def configure_threads(n: int) -> None:
    """Sets torch's intra-op thread count for this process, numpy's BLAS to one (call once per worker)."""
    torch.set_num_threads(max(1, int(n)))
    single_thread_blas()
