"""The one-pass automatic ROI and the numpy heads behind the backbone seam (issue 26)."""

import numpy as np
import pytest
from PIL import Image

import ml
from ml.boxes import iou
from ml.heads import Head, cell_weights, gradcam, pool
from ml.roi import AUTO_ROI, BOX_SCORED_ONE_PASS


def test_cell_weights_are_the_area_share_of_each_cell():
    weights = cell_weights((0.5, 1.0, 2.0, 3.0), (4, 3))
    expected = np.zeros((4, 3), np.float32)
    expected[1:3, 0] = 0.5
    expected[1:3, 1] = 1.0
    np.testing.assert_allclose(weights, expected)
    np.testing.assert_allclose(cell_weights((0, 0, 3, 4), (4, 3)), np.ones((4, 3)))


def test_a_box_over_the_whole_map_pools_and_explains_as_the_whole_map():
    rng = np.random.default_rng(0)
    activation = rng.normal(1, 3, size=(2, 5, 4, 4)).astype(np.float32)
    head = Head(rng.normal(size=5).astype(np.float32), 0.3, 6.0)
    whole = np.stack([cell_weights((0, 0, 4, 4), (4, 4))] * 2)
    activated = head.activate(activation)
    np.testing.assert_allclose(pool(activated, whole), pool(activated), rtol=1e-6)
    np.testing.assert_allclose(gradcam(activation, head, whole), gradcam(activation, head), rtol=1e-5)
    part = np.stack([cell_weights((1, 1, 3, 3), (4, 4))] * 2)
    np.testing.assert_allclose(pool(activated, part), activated[:, :, 1:3, 1:3].mean(axis=(2, 3)), rtol=1e-6)


def test_an_automatic_box_over_the_whole_photo_gives_the_whole_photo_result(model, photo, monkeypatch):
    image = photo(90, 60, seed=4)
    plain = model.analyse(image, roi=(0, 0, 90, 60))
    monkeypatch.setattr(model, "locate", lambda *args: (0, 0, 90, 60))
    auto = model.analyse(image)
    assert auto.roi_source == "auto" and auto.roi == (0, 0, 90, 60)
    assert auto.probability == pytest.approx(plain.probability, abs=1e-6)
    np.testing.assert_allclose(auto.heatmap, plain.heatmap, atol=1e-5)


class RednessBackbone:
    """A stand-in backbone: every channel is the input's redness averaged over 8 x 8 cells (so
    the activation energy peaks on a red lesion); counts its calls."""

    def __init__(self, channels: int):
        self.channels, self.calls = channels, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        red = x[:, 0] - 0.5 * (x[:, 1] + x[:, 2])
        b, s, _ = red.shape
        cells = red.reshape(b, s // 8, 8, s // 8, 8).mean(axis=(2, 4))
        return np.repeat(cells[:, None], self.channels, axis=1).astype(np.float32)


@pytest.mark.parametrize("params", [AUTO_ROI, BOX_SCORED_ONE_PASS], ids=["shipped", "box_scored"])
def test_one_pass_locates_a_small_lesion(model, params):
    backbone = RednessBackbone(model.head.weight.shape[0])
    located = ml.LesionModel(model.metadata, backbone, model.head, roi_params=params)
    rgb = np.zeros((300, 400, 3), np.uint8) + np.array([205, 150, 112], np.uint8)  # skin
    yy, xx = np.mgrid[0:300, 0:400]
    rgb[(yy - 170) ** 2 + (xx - 240) ** 2 < 22**2] = (200, 40, 40)  # a red lesion, 44 px across
    photo = Image.fromarray(rgb)
    analyses = located.analyse_batch([photo, photo], [None, (0, 0, 100, 100)])
    assert backbone.calls == 1  # one backbone pass for the photo with and the photo without a box
    auto = analyses[0]
    assert auto.roi_source == "auto" and iou(auto.roi, (218, 148, 262, 192)) > 0.4
    x0, y0, x1, y1 = auto.roi
    assert x0 <= 240 < x1 and y0 <= 170 < y1
    assert auto.heatmap[170, 240] > 0.5
    whole = located.analyse(photo, roi=(0, 0, 400, 300))
    if params.score_box:  # the box's cells give the score and the heatmap
        assert auto.heatmap[:, :x0].max() == 0
        assert auto.probability != pytest.approx(whole.probability, abs=1e-6)
    else:  # the whole photo is scored and explained; the box shows the lesion
        assert auto.probability == pytest.approx(whole.probability, abs=1e-6)
        np.testing.assert_allclose(auto.heatmap, whole.heatmap, atol=1e-5)
