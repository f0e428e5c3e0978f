"""The ONNX Runtime backend (``ML_RUNTIME=onnx``) against the torch one it is exported from."""

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import ml
import ml.ort
from ml.checkpoint import build_network, read_checkpoint
from ml.export import export_onnx
from ml.ort import OrtBackbone
from ml.sidecar import read_sidecar, sidecar_paths


def export_tiny(folder, arch):
    """A tiny random checkpoint of ``arch`` with its ONNX export beside it."""
    checkpoint = ml.testing.make_random_checkpoint(
        folder / "tiny.pt", arch=arch, differential_classes=("mpox", "other", "healthy_skin")
    )
    export_onnx(checkpoint)
    return checkpoint


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_tiny(tmp_path_factory.mktemp("lite0"), "efficientnet_lite0")


@pytest.fixture(scope="module", params=["efficientnet_lite0", pytest.param("densenet121", marks=pytest.mark.slow)])
def exported_arch(request, exported, tmp_path_factory):
    return (
        exported
        if request.param == "efficientnet_lite0"
        else export_tiny(tmp_path_factory.mktemp("arch"), request.param)
    )


def test_activation_equals_torch_at_any_batch_and_size(exported_arch):
    net = build_network(*read_checkpoint(exported_arch))
    backbone = ml.ort.load(exported_arch, warmup=False).backbone
    rng = np.random.default_rng(0)
    for batch, size in ((1, 64), (3, 64), (2, 96)):
        x = rng.standard_normal((batch, 3, size, size), dtype=np.float32)
        with torch.inference_mode():
            expected = net.features(torch.from_numpy(x)).numpy()
        got = backbone(x)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())


def test_export_records_heads_and_metadata(exported):
    metadata, state = read_checkpoint(exported)
    _, sidecar_metadata, arrays = read_sidecar(exported)
    assert sidecar_metadata == metadata
    assert {"head.fc.weight", "head.fc.bias", "differential.weight", "differential.bias"} <= set(arrays)
    np.testing.assert_array_equal(arrays["differential.weight"], state["differential.weight"].float().numpy())


def test_stale_or_missing_export_is_refused(exported, tmp_path):
    checkpoint = tmp_path / exported.name
    shutil.copy(exported, checkpoint)
    with pytest.raises(ml.CheckpointError, match="no ONNX export"):
        read_sidecar(checkpoint)
    onnx_path, heads_path = sidecar_paths(exported)
    for path in (onnx_path, heads_path):
        shutil.copy(path, tmp_path / path.name)
    read_sidecar(checkpoint)  # a faithful copy is accepted
    blob = torch.load(checkpoint, weights_only=True)
    blob["metadata"]["version"] = "replaced in place"
    torch.save(blob, checkpoint)
    with pytest.raises(ml.CheckpointError, match="stale"):
        read_sidecar(checkpoint)
    export_onnx(checkpoint)
    read_sidecar(checkpoint)
    copied = tmp_path / onnx_path.name
    copied.write_bytes(copied.read_bytes()[: copied.stat().st_size // 2])  # half copied
    with pytest.raises(ml.CheckpointError, match="does not match"):
        read_sidecar(checkpoint)


def test_backbone_takes_channels_last_strides(exported):
    onnx_path, _, _ = read_sidecar(exported)
    backbone = OrtBackbone(onnx_path, threads=1)
    x = np.random.default_rng(1).standard_normal((2, 64, 64, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        backbone(x.transpose(0, 3, 1, 2)), backbone(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    )


@pytest.fixture(scope="module")
def full_export(tmp_path_factory):
    """A tiny checkpoint with everything after the backbone: calibration, an assessability rule
    (kNN bank) and a differential head; exported."""
    rng = np.random.default_rng(3)
    examples = [Image.fromarray(rng.integers(90, 200, (48, 48, 3), dtype=np.uint8)) for _ in range(4)]
    checkpoint = ml.testing.make_random_checkpoint(
        tmp_path_factory.mktemp("full") / "full.pt",
        arch="efficientnet_lite0",
        assessable_examples=examples,
        calibration={"a": 0.7, "b": -0.2},
        differential_classes=("mpox", "chickenpox", "healthy_skin"),
    )
    export_onnx(checkpoint)
    return checkpoint


def test_analysis_equals_torch(full_export, photo):
    by_torch, by_onnx = ml.load(full_export), ml.ort.load(full_export)
    assert by_onnx.metadata == by_torch.metadata and by_onnx.assessor.config == by_torch.assessor.config
    cases = [
        (photo(120, 90, seed=1), None),
        (photo(100, 100, seed=2), (10, 10, 80, 70)),
        (photo(64, 200, seed=4), None),
    ]
    for image, roi in cases:
        expected, got = (
            by_torch.analyse(image, roi, heatmap_max_side=100),
            by_onnx.analyse(image, roi, heatmap_max_side=100),
        )
        assert got.probability == pytest.approx(expected.probability, abs=1e-4)
        assert (got.roi, got.roi_source, got.reason) == (expected.roi, expected.roi_source, expected.reason)
        assert got.differential == pytest.approx(expected.differential, abs=1e-4)
        np.testing.assert_allclose(got.heatmap, expected.heatmap, atol=2e-3)


def test_onnx_path_never_imports_torch(full_export):
    """What an inference worker does with ML_RUNTIME=onnx (load, analyse, overlay), in a fresh
    interpreter: torch must not be imported on the way."""
    code = (
        "import sys; from PIL import Image; import ml, ml.ort\n"
        "ml.ort.configure_threads(1)\n"
        "model = ml.ort.load(sys.argv[1])\n"
        "image = Image.new('RGB', (120, 90), (200, 150, 120))\n"
        "ml.overlay(image, model.analyse(image))\n"
        "assert model.predict([image], [None])[0].probability >= 0\n"
        "loaded = sorted(name for name in sys.modules if name.split('.')[0] in ('torch', 'torchvision'))\n"
        "assert not loaded, loaded[:5]\n"
    )
    subprocess.run([sys.executable, "-c", code, str(full_export)], check=True, timeout=120)
