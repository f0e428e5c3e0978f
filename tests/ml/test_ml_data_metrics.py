from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ml.boxes import box_from_tap, clamp_box, iou
from ml.metrics import binary_metrics, bootstrap_ci, roc_auc, threshold_for_sensitivity
from ml.research.data import discover, grouped_folds, grouped_holdout, patient_id_from_name, write_csv
from ml.research.scenes import build_scenes
from ml.roi import box_from_cam


def test_auc_and_metrics_known_values():
    labels = [0, 0, 1, 1]
    scores = [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(labels, scores) == pytest.approx(0.75)
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.2, 0.9]) == pytest.approx(0.875)  # ties count 1/2
    m = binary_metrics(labels, scores, 0.3)
    assert m["sensitivity"] == m["recall"] == 1.0
    assert m["specificity"] == 0.5 and m["precision"] == pytest.approx(2 / 3)
    assert m["accuracy"] == 0.75 and m["f1"] == pytest.approx(0.8)
    rng = np.random.default_rng(0)
    y, s = rng.integers(0, 2, 200), rng.random(200)
    assert roc_auc(y, s) == pytest.approx(roc_auc_score(y, s))
    assert np.isnan(roc_auc([1, 1, 1], [0.2, 0.5, 0.9]))  # one class, as in some bootstrap resamples


def test_threshold_for_sensitivity():
    labels = np.r_[np.ones(20), np.zeros(20)]
    scores = np.r_[np.linspace(0.3, 0.9, 20), np.linspace(0, 0.6, 20)]
    threshold = threshold_for_sensitivity(labels, scores, 0.95)
    assert binary_metrics(labels, scores, threshold)["sensitivity"] >= 0.95
    assert binary_metrics(labels, scores, threshold + 1e-6)["sensitivity"] < 0.95


def test_bootstrap_ci_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 120)
    scores = labels * 0.4 + rng.random(120) * 0.8
    groups = np.arange(120) // 2
    ci = bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=300, seed=0)
    point = binary_metrics(labels, scores, 0.5)
    for name, (low, high) in ci.items():
        assert low <= point[name] <= high
    assert ci == bootstrap_ci(labels, scores, 0.5, groups=groups, n_boot=300, seed=0)
    perfect = bootstrap_ci([0, 1] * 10, [0.1, 0.9] * 10, 0.5, n_boot=50)
    assert perfect["auc"] == [1.0, 1.0]


def test_patient_ids_from_names():
    assert patient_id_from_name(Path("M28_01.jpg")) == "M28"
    assert patient_id_from_name(Path("photo.png")) == "photo"
    assert patient_id_from_name(Path("_x.png")) == "_x"


def test_grouped_splits_never_share_patients():
    rng = np.random.default_rng(0)
    groups = np.array([f"P{i}" for i in rng.integers(0, 40, 150)])
    labels = np.array([int(g[1:]) % 2 for g in groups])
    folds = grouped_folds(labels, groups, 5, seed=0)
    seen = []
    for train, test in folds:
        assert not set(groups[train]) & set(groups[test])
        seen.extend(test)
    assert sorted(seen) == list(range(150))  # every image tested exactly once
    train, val = grouped_holdout(labels, groups, 0.2, seed=0)
    assert not set(groups[train]) & set(groups[val]) and 0 < len(val) < len(train)


def test_discover_nested_folders_and_csv(tmp_path, class_folder):
    paths = class_folder(tmp_path, n_patients=3, per_patient=2)
    samples = discover(tmp_path)
    assert len(samples) == len(paths) == 12
    assert {s.label for s in samples if "non_mpox" in s.path.parts} == {0}
    assert {s.patient_id for s in samples} == {"NM00", "NM01", "NM02", "M00", "M01", "M02"}
    first = samples[0]
    rel = first.path.relative_to(tmp_path).as_posix()
    (tmp_path / "dataset.csv").write_text(f"path,patient_id,x0,y0,x1,y1\n{rel},P9,1,2,30,31\n")
    again = discover(tmp_path)
    assert again[0].patient_id == "P9" and again[0].box == (1, 2, 30, 31)
    assert again[1].box is None
    write_csv(tmp_path / "copy.csv", tmp_path, again)
    assert discover(tmp_path, tmp_path / "copy.csv") == again


def test_not_assessable_photos_count_as_sent_to_a_clinician_not_as_missed():
    from ml.metrics import binary_metrics, triage_calls

    labels = np.array([1, 1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.1, 0.1, 0.9, 0.1, 0.9])
    assessable = np.array([True, True, False, True, True, False])
    # mpox: flagged, missed, not assessable (caught); non-mpox: flagged, clear, not assessable (not flagged)
    assert triage_calls(labels, scores, 0.5, assessable).tolist() == [1, 0, 1, 1, 0, 0]
    m = binary_metrics(labels, scores, 0.5, assessable)
    assert m["sensitivity"] == pytest.approx(2 / 3) and m["specificity"] == pytest.approx(2 / 3)
    assert m["auc"] == binary_metrics(labels[assessable], scores[assessable], 0.5)["auc"] == 0.5
    assert binary_metrics(labels, scores, 0.5) == binary_metrics(labels, scores, 0.5, np.ones(6, bool))


def test_discover_needs_class_folders(tmp_path):
    (tmp_path / "mpox").mkdir()
    with pytest.raises(FileNotFoundError, match="non_mpox"):
        discover(tmp_path)


def test_box_geometry():
    assert clamp_box((-5, -5, 500, 20), (100, 50)) == (0, 0, 100, 20)
    with pytest.raises(ValueError):
        clamp_box((10, 10, 5, 20), (100, 100))
    assert iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(1 / 3)
    cam = np.zeros((20, 20), dtype=np.float32)
    cam[5:8, 12:15] = 1.0
    box = box_from_cam(cam, (200, 100))
    x0, y0, x1, y1 = box
    assert 0 <= x0 <= 120 and 150 <= x1 <= 200 and 0 <= y0 <= 25 and 40 <= y1 <= 100
    assert x1 - x0 == y1 - y0  # made square
    assert box_from_cam(np.zeros((7, 7)), (50, 50)) is None


def test_a_tap_stands_for_a_square_box_sized_from_the_photo():
    from ml.boxes import TAP_BOX_FRACTION, TAP_BOX_MIN_SIDE

    side = round(TAP_BOX_FRACTION * 3000)
    assert box_from_tap(2000, 1500, (4000, 3000)) == (
        2000 - side // 2,
        1500 - side // 2,
        2000 - side // 2 + side,
        1500 - side // 2 + side,
    )
    assert box_from_tap(5, 2990, (4000, 3000)) == (0, 3000 - side, side, 3000)  # shifted inside
    assert box_from_tap(100, 100, (200, 150)) == (68, 68, 132, 132)  # at least the minimum side
    assert TAP_BOX_MIN_SIDE == 64 and box_from_tap(10, 10, (40, 30)) == (0, 0, 30, 30)  # at most the photo
    for outside in [(-1, 10), (10, -1), (4000, 10), (10, 3000)]:
        with pytest.raises(ValueError, match="outside"):
            box_from_tap(*outside, (4000, 3000))


def test_box_geometry_imports_without_torch():
    import subprocess
    import sys

    code = "import sys, ml.boxes; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_scenes_keep_true_box(tmp_path, class_folder):
    source = tmp_path / "src"
    class_folder(source, n_patients=2, per_patient=1, size=32)
    scenes = build_scenes(source, tmp_path / "scenes", seed=0, log=lambda *_: None)
    assert discover(tmp_path / "scenes") == scenes
    from PIL import Image

    for scene in scenes:
        x0, y0, x1, y1 = scene.box
        image = Image.open(scene.path).convert("RGB")
        area = (x1 - x0) * (y1 - y0) / (image.width * image.height)
        assert 0.09 <= area <= 0.51 and x1 <= image.width and y1 <= image.height
        # the pasted lesion (uniform colour family) differs from the background around it
        inside = np.asarray(image.crop((x0 + 3, y0 + 3, x1 - 3, y1 - 3)), dtype=float).mean((0, 1))
        src = discover(source)[scenes.index(scene)]
        expected = np.asarray(Image.open(src.path).convert("RGB"), dtype=float).mean((0, 1))
        assert np.abs(inside - expected).max() < 12


def test_training_images_are_cropped_to_csv_boxes(tmp_path, class_folder):
    from ml.preprocess import load_image
    from ml.research.data import Sample
    from ml.research.training import load_images

    path = class_folder(tmp_path, n_patients=1, per_patient=1, size=40)[0]
    boxed, whole = load_images([Sample(path, 0, "P", (0, 0, 20, 10)), Sample(path, 0, "P")], 16)
    assert boxed.size == whole.size == (16, 16)
    expected = load_image(path).crop((0, 0, 20, 10)).resize((16, 16), resample=2, reducing_gap=3.0)
    assert np.array_equal(np.asarray(boxed), np.asarray(expected))


def test_hard_scenes_are_reproducible_and_keep_the_true_box(tmp_path, class_folder):
    from PIL import Image

    from ml.research.scenes import HARD_AREA_FRACTION

    source = tmp_path / "src"
    class_folder(source, n_patients=2, per_patient=1, size=32)
    first = build_scenes(source, tmp_path / "a", seed=3, hard=True, log=lambda *_: None)
    again = build_scenes(source, tmp_path / "b", seed=3, hard=True, log=lambda *_: None)
    assert [s.box for s in first] == [s.box for s in again]
    assert all(a.path.read_bytes() == b.path.read_bytes() for a, b in zip(first, again))
    assert discover(tmp_path / "a") == first
    for scene in first:
        x0, y0, x1, y1 = scene.box
        width, height = Image.open(scene.path).size
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        assert HARD_AREA_FRACTION[0] * 0.9 <= (x1 - x0) * (y1 - y0) / (width * height) <= HARD_AREA_FRACTION[1]


def test_auto_roi_weighing_prefers_a_lesion_on_skin_to_a_glove_and_the_border():
    """The activation energy peaks on a blue glove (as salient objects do); skin colour, contrast
    with the surrounding skin and distance from the border move the box to the lesion."""
    from ml.roi import AUTO_ROI, ENERGY_ONLY, border_window, locating_map, near_skin

    rgb = np.zeros((224, 224, 3), dtype=np.uint8)
    rgb[:] = (205, 150, 112)  # skin
    rgb[20:200, 0:50] = (70, 110, 205)  # a blue glove along the left edge
    yy, xx = np.mgrid[0:224, 0:224]
    lesion = (yy - 120) ** 2 + (xx - 150) ** 2 < 10**2
    rgb[lesion] = (180, 60, 60)  # a red lesion on the skin (narrower than the closing)
    skin = near_skin(rgb)
    assert skin[120, 150] > 0.9 and skin[100, 10] < 0.1  # the lesion counts as skin, the glove does not
    window = border_window((224, 224), 0.1)
    assert window[0, 100] < 0.05 and window[112, 112] == 1.0

    energy = np.zeros((224, 224), dtype=np.float32)
    energy[80:140, 5:45] = 1.0  # strongest on the glove
    energy[105:135, 135:165] = 0.6  # weaker on the lesion
    before = box_from_cam(locating_map(energy, rgb, ENERGY_ONLY), (224, 224))
    after = box_from_cam(locating_map(energy, rgb, AUTO_ROI), (224, 224), AUTO_ROI.threshold)
    assert before[0] < 45 and iou(before, (135, 105, 165, 135)) == 0
    assert after[0] <= 135 and after[2] >= 165 and after[1] <= 105 and after[3] >= 135
