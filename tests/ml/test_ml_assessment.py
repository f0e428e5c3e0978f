"""Assessability (issue 17): quality measures, the fitted rule, one pass, calibration, negatives."""

import json

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter

import ml
from ml.assessment import BANK_KEY, FALLBACK_RULE, LESION_KEY, Assessor, lesion_score, quality_measures
from ml.checkpoint import read_checkpoint
from ml.research.negatives import RENDERERS, build_negatives, score_negatives
from ml.research.study import fit_lesion_check


def lesion_photo(seed: int, size=(160, 120)) -> Image.Image:
    """Skin-coloured photo with texture and a dark red spot: sharp, skin, a 'lesion'."""
    rng = np.random.default_rng(seed)
    base = np.array([205, 150, 120], dtype=np.float32) + rng.normal(0, 12, size=(size[1], size[0], 3))
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    w, h = size
    r = rng.uniform(0.15, 0.3) * h
    ImageDraw.Draw(image).ellipse((w / 2 - r, h / 2 - r, w / 2 + r, h / 2 + r), fill=(150, 50, 50))
    return image


@pytest.fixture(scope="module")
def assessing_checkpoint(tmp_path_factory):
    examples = [lesion_photo(seed) for seed in range(8)]
    return ml.testing.make_random_checkpoint(
        tmp_path_factory.mktemp("assess") / "assess.pt",
        arch="efficientnet_lite0",
        input_size=64,
        assessable_examples=examples,
        calibration={"a": 2.0, "b": -0.5},
    )


def test_quality_measures_tell_dark_blurred_and_non_skin_apart():
    sharp = np.asarray(lesion_photo(0).resize((64, 64)))
    blurred = np.asarray(lesion_photo(0).filter(ImageFilter.GaussianBlur(6)).resize((64, 64)))
    dark = (sharp * 0.05).astype(np.uint8)
    blue = np.zeros_like(sharp)
    blue[..., 2] = 200
    q = {
        name: quality_measures(a)
        for name, a in {"sharp": sharp, "blurred": blurred, "dark": dark, "blue": blue}.items()
    }
    assert q["blurred"]["sharpness"] < q["sharp"]["sharpness"] / 5
    assert q["dark"]["brightness"] < 20 < q["sharp"]["brightness"]
    assert q["sharp"]["skin_share"] > 0.8 and q["blue"]["skin_share"] == 0.0


def test_rule_reports_the_first_failing_check_in_order():
    rule = {
        "min_brightness": 30,
        "max_brightness": 230,
        "min_contrast": 5,
        "min_sharpness": 10,
        "min_skin_share": 0.3,
        "max_knn_distance": 0.2,
        "knn_k": 1,
    }
    assessor = Assessor(rule)
    good = {"brightness": 120, "contrast": 30, "sharpness": 50, "skin_share": 0.9}
    assert assessor.reason(good, 0.1) == ""
    assert assessor.reason(good, 0.3) == "no_lesion"
    assert assessor.reason({**good, "skin_share": 0.1}, 0.3) == "not_skin"
    assert assessor.reason({**good, "sharpness": 1}, 0.3) == "blurred"
    assert assessor.reason({**good, "contrast": 1, "sharpness": 0}, 0.3) == "blank"
    assert assessor.reason({**good, "brightness": 10, "contrast": 1}, 0.3) == "too_dark"
    assert assessor.reason({**good, "brightness": 250}, 0.1) == "too_bright"


def test_lesion_present_score_below_its_limit_means_no_lesion():
    rule = {"knn_k": 1, "max_knn_distance": 0.5, "lesion_bias": -1.0, "min_lesion_score": 0.0}
    bank = torch.nn.functional.normalize(torch.ones(1, 4), dim=1)
    assessor = Assessor(rule, bank, lesion_weight=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    crop = np.asarray(lesion_photo(0).resize((64, 64)))
    pooled = torch.tensor(
        [
            [1.0, 1.0, 1.0, 1.0],  # score 1 >= 0: a lesion
            [0.2, 0.2, 1.0, 1.0],
        ]
    )  # score -0.6 < 0, though near the bank
    assert assessor.reasons([crop, crop], pooled) == ["", "no_lesion"]
    good = {"brightness": 120, "contrast": 30, "sharpness": 50, "skin_share": 0.9}
    assert Assessor(rule).reason(good, 0.1, lesion=0.5) == ""
    assert Assessor(rule).reason(good, 0.1, lesion=-0.6) == "no_lesion"
    with pytest.raises(ValueError, match=LESION_KEY):
        Assessor.from_checkpoint({"assessment": rule}, {BANK_KEY: bank})


def test_lesion_check_stored_as_weights_scores_as_the_study_fitted_it():
    rng = np.random.default_rng(0)
    lesions = rng.normal(1.0, 1.0, size=(40, 16))
    negatives = torch.tensor(rng.normal(-1.0, 1.0, size=(30, 16)), dtype=torch.float16)
    check = fit_lesion_check(lesions, negatives)
    weight, bias = check.weights()
    unseen = rng.normal(0.0, 2.0, size=(6, 16))
    stored = torch.tensor(weight, dtype=torch.float32)
    assert lesion_score(torch.tensor(unseen), stored, bias) == pytest.approx(check.logit(unseen), abs=1e-3)
    assert np.mean(check.logit(lesions) > 0) > 0.9 and np.mean(check.logit(negatives.float().numpy()) < 0) > 0.9


def test_checkpoint_keeps_the_rule_and_bank_outside_the_network(assessing_checkpoint):
    metadata, state = read_checkpoint(assessing_checkpoint)
    assert BANK_KEY in state and state[BANK_KEY].shape[0] == 8
    model = ml.load(assessing_checkpoint)
    assert BANK_KEY not in model.backbone.net.state_dict()
    assert model.assessor.config["knn_k"] == 1 and model.assessor.bank.shape == state[BANK_KEY].shape


def test_analyse_judges_photos_in_one_forward_pass(assessing_checkpoint):
    model = ml.load(assessing_checkpoint)
    calls = []
    hook = model.backbone.net.features.register_forward_hook(lambda *args: calls.append(1))
    try:
        blue = np.zeros((120, 160, 3)) + [40, 90, 220]
        blue[:, (np.arange(160) // 20) % 2 == 1] = [150, 190, 255]  # striped blue fabric
        photos = [
            lesion_photo(3),
            lesion_photo(7).filter(ImageFilter.GaussianBlur(3)),
            Image.fromarray((np.asarray(lesion_photo(4)) * 0.05).astype(np.uint8)),
            Image.fromarray(blue.astype(np.uint8)),
        ]
        analyses = model.analyse_batch(photos, [(0, 0, 160, 120)] * 4)
    finally:
        hook.remove()
    assert len(calls) == 1  # one backbone pass gives score, heatmap and judgement
    assert [a.reason for a in analyses] == ["", "blurred", "too_dark", "not_skin"]
    assert [a.assessable for a in analyses] == [True, False, False, False]


def test_distance_to_the_training_lesions_flags_a_photo_unlike_them(assessing_checkpoint):
    model = ml.load(assessing_checkpoint)
    rng = np.random.default_rng(0)
    stripes = np.zeros((120, 160, 3), dtype=np.uint8)
    stripes[:, ::8] = 255
    stripes[..., 0] = np.clip(stripes[..., 0].astype(int) + 200, 0, 255)  # skin-ish hue, not a lesion
    stripes = np.clip(stripes + rng.normal(0, 5, stripes.shape), 0, 255).astype(np.uint8)
    far = model.predict([Image.fromarray(stripes)], [None])[0]
    near = model.predict([lesion_photo(5)], [None])[0]
    assert near.assessable, near
    assert far.reason in ("no_lesion", "not_skin")


def test_predict_matches_analyse_and_applies_calibration(assessing_checkpoint):
    model = ml.load(assessing_checkpoint)
    photos = [lesion_photo(6), lesion_photo(7).filter(ImageFilter.GaussianBlur(8))]
    scores = model.predict(photos, [None, None])
    analyses = model.analyse_batch(photos, [(0, 0, 160, 120)] * 2)
    for score, analysis in zip(scores, analyses):
        assert score.probability == pytest.approx(analysis.probability, abs=1e-5)
        assert (score.assessable, score.reason) == (analysis.assessable, analysis.reason)
    x = torch.from_numpy(model._array(model._crops(photos[:1], [None])))
    with torch.inference_mode():
        logit = float(model.backbone.net(x)[0, 0])
    assert scores[0].probability == pytest.approx(1 / (1 + np.exp(-(2.0 * logit - 0.5))), abs=1e-5)
    assert model.predict_proba(photos, [None, None]) == pytest.approx([s.probability for s in scores])


def test_checkpoint_without_a_rule_uses_the_fallback_luminance_limits(checkpoint_path):
    model = ml.load(checkpoint_path)
    assert model.assessor.config == FALLBACK_RULE and model.assessor.bank is None
    dark, blank, photo = (
        Image.new("RGB", (80, 80), (4, 4, 4)),
        Image.new("RGB", (80, 80), (128, 128, 128)),
        lesion_photo(1),
    )
    assert [s.reason for s in model.predict([dark, blank, photo], [None] * 3)] == ["too_dark", "blank", ""]


def test_negatives_set_renders_every_category_with_sources(tmp_path):
    paths = build_negatives(tmp_path, seed=3, per_category=1, log=lambda _: None)
    folders = {p.parent.name for p in paths}
    assert set(RENDERERS) | {"blurred", "dark"} <= folders
    sources = (tmp_path / "SOURCES.md").read_text()
    assert all(f"non_mpox/{name}/" in sources for name in folders - {"photos"})
    if "photos" in folders:  # scikit-image installed: each photo's licence listed
        assert all(p.stem.removeprefix("skimage-") in sources for p in paths if p.parent.name == "photos")
    again = build_negatives(tmp_path / "again", seed=3, per_category=1, log=lambda _: None)
    assert [
        np.asarray(Image.open(p)).tolist() == np.asarray(Image.open(q)).tolist() for p, q in zip(paths[:3], again[:3])
    ] == [True] * 3  # seeded: identical renders
    # EfficientNet-Lite0, the shipped architecture: the automatic ROI's 416 px locating pass over
    # every image costs a fifth of DenseNet-121's (the session checkpoint's)
    lite = ml.testing.make_random_checkpoint(tmp_path / "lite.pt", arch="efficientnet_lite0")
    report = score_negatives(ml.load(lite), tmp_path)
    assert report["dark"]["not_assessable"] == 1 and report["dark"]["flagged"] == 0
    assert all(0 <= r["flagged_ci95"][0] <= r["flagged_share"] <= r["flagged_ci95"][1] <= 1 for r in report.values())
    json.dumps(report)
