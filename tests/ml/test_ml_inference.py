import copy

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image

import ml
from ml.checkpoint import FORMAT_TAG, REQUIRED_METADATA, read_checkpoint


def test_checkpoint_round_trip(checkpoint_path, model):
    blob = torch.load(checkpoint_path, weights_only=True)
    assert blob["format"] == FORMAT_TAG
    metadata, state = read_checkpoint(checkpoint_path)
    assert set(REQUIRED_METADATA) <= set(metadata)
    assert metadata["class_names"] == ["non_mpox", "mpox"] and metadata["positive_class"] == "mpox"
    assert (model.version, model.arch, model.threshold, model.input_size) == ("test-random", "densenet121", 0.5, 64)
    loaded = model.backbone.net.state_dict()
    assert all(torch.equal(state[k].float(), loaded[k].float()) for k in state)
    assert "state_dict" not in model.metadata


def test_load_rejects_garbage(tmp_path, checkpoint_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all" * 10)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    wrong_arch = tmp_path / "wrong_arch.pt"
    blob = torch.load(checkpoint_path, weights_only=True)
    blob["metadata"]["arch"] = "efficientnet_lite0"
    torch.save(blob, wrong_arch)
    for path in (garbage, foreign, wrong_arch, tmp_path / "missing.pt"):
        with pytest.raises(ml.CheckpointError):
            ml.load(path)


def test_analyse_whole_photo(model, photo):
    image = photo(90, 50)
    analysis = model.analyse(image)
    assert 0.0 <= analysis.probability <= 1.0
    assert analysis.heatmap.shape == (50, 90) and analysis.heatmap.dtype == np.float32
    assert analysis.heatmap.min() >= 0 and analysis.heatmap.max() <= 1
    assert analysis.roi_source in ("auto", "none")
    assert {"roi", "model", "total"} <= set(analysis.timings_ms)


def test_given_roi_heatmap_is_zero_outside(model, photo):
    image = photo(120, 80, seed=1)
    analysis = model.analyse(image, roi=(10, 20, 70, 60))
    assert analysis.roi == (10, 20, 70, 60) and analysis.roi_source == "given"
    outside = analysis.heatmap.copy()
    outside[20:60, 10:70] = 0
    assert not outside.any()


def test_whole_photo_without_auto_roi(checkpoint_path, photo):
    analysis = ml.load(checkpoint_path, auto_roi=False).analyse(photo(60, 40))
    assert analysis.roi is None and analysis.roi_source == "none"


def test_no_parameter_gradients(model, photo):
    model.analyse_batch([photo(64, 64), photo(70, 50, seed=2)])
    assert all(p.grad is None and not p.requires_grad for p in model.backbone.net.parameters())


def test_analyse_batch_equals_single(model, photo):
    images = [photo(64, 64, seed=s) for s in range(3)]
    rois = [None, (5, 5, 40, 40), None]
    batch = model.analyse_batch(images, rois)
    for image, roi, together in zip(images, rois, batch):
        alone = model.analyse(image, roi)
        assert alone.roi == together.roi and alone.roi_source == together.roi_source
        assert alone.probability == pytest.approx(together.probability, abs=1e-5)
        np.testing.assert_allclose(alone.heatmap, together.heatmap, atol=1e-4)


@pytest.mark.parametrize("arch", ["densenet121", "efficientnet_lite0"])
def test_numpy_gradcam_matches_pytorch_grad_cam(tmp_path, arch):
    loaded = ml.load(ml.testing.make_random_checkpoint(tmp_path / "m.pt", arch=arch))
    x = torch.randn(3, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    reference_net = copy.deepcopy(loaded.backbone.net).requires_grad_(True)
    target_layer = ml.ARCHITECTURES[arch].target_module(reference_net)
    with GradCAM(model=reference_net, target_layers=[target_layer]) as cam:
        for target, sign in (("positive", 1.0), ("predicted", None)):
            logits, fast = loaded.explain(x.numpy(), target=target)
            signs = [1.0] * 3 if sign else np.sign(logits).tolist()
            targets = [lambda out, s=s: s * out[0] for s in signs]
            reference = cam(input_tensor=x.clone(), targets=targets)
            assert fast.shape == reference.shape == (3, 64, 64)
            np.testing.assert_allclose(fast, reference, atol=2e-3)
        assert any(fast[i].max() > 0 for i in range(3))  # not a trivial all-zero comparison


def test_overlay_matches_show_cam_on_image(model, photo):
    image = photo(50, 30, seed=3)
    heatmap = np.linspace(0, 1, 50 * 30, dtype=np.float32).reshape(30, 50)
    overlay = ml.heatmap_overlay(image, heatmap)
    reference = show_cam_on_image(np.asarray(image, dtype=np.float32) / 255, heatmap, use_rgb=True)
    assert overlay.mode == "RGB" and overlay.size == image.size
    assert np.abs(np.asarray(overlay, dtype=int) - reference.astype(int)).max() <= 1
    boxed = ml.heatmap_overlay(image, heatmap, roi=(5, 5, 20, 20))
    assert boxed.getpixel((5, 10)) == (255, 255, 255)


@pytest.mark.parametrize(
    "size,mode", [((3, 2), "RGB"), ((1, 1), "RGB"), ((2000, 20), "RGB"), ((15, 900), "RGB"), ((120, 90), "L")]
)
def test_auto_roi_inside_any_image(model, photo, size, mode):
    image = photo(*size, mode=mode)
    analysis = model.analyse(image)
    assert analysis.heatmap.shape == (size[1], size[0])
    if analysis.roi is not None:
        x0, y0, x1, y1 = analysis.roi
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]


def test_configure_threads():
    """Torch gets the worker's threads; numpy's BLAS one, so its idle pool never spins on the
    cores the backbone needs."""
    from threadpoolctl import threadpool_info, threadpool_limits

    before = torch.get_num_threads()
    with threadpool_limits(2, user_api="blas"):  # restores the BLAS pools afterwards
        ml.configure_threads(1)
        assert torch.get_num_threads() == 1
        assert {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"} == {1}
    ml.configure_threads(before)


def test_architecture_registry():
    assert ml.ARCHITECTURES["densenet121"].target_layer == "features.norm5"
    assert {"densenet121", "efficientnet_lite0"} <= set(ml.ARCHITECTURES)


def test_heatmap_max_side_scales_the_heatmap_not_the_crop(model, photo):
    image = photo(400, 300, seed=5)
    roi = (100, 60, 300, 260)
    full = model.analyse(image, roi=roi)
    capped = model.analyse(image, roi=roi, heatmap_max_side=200)
    assert capped.probability == pytest.approx(full.probability, abs=1e-6)  # the model saw the same crop
    assert capped.roi == full.roi == roi
    assert capped.heatmap.shape == (150, 200)
    assert capped.heatmap[:, :50].max() == 0 and capped.heatmap[:, 150:].max() == 0  # zero outside the box
    assert np.abs(capped.heatmap - full.heatmap[::2, ::2]).mean() < 0.05
