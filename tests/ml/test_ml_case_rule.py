"""The case rule (ml.case_rule) and its fitting (ml.research.case_study) on synthetic scores, and the
prevalence shift's maths."""

import math

import numpy as np
import pytest

from ml.case_rule import (
    COMBINERS,
    CaseScore,
    case_score,
    case_threshold,
    combine,
    prior_shift,
    sigmoid,
    training_prevalence,
)
from ml.research.case_study import apply_rule, choose_rule, fit_rule, form_cases
from ml.research.sources import Photo


def test_combiners_on_the_log_odds_scale():
    p = [0.2, 0.8]
    assert combine(p, "max") == pytest.approx(math.log(4))
    assert combine(p, "mean") == pytest.approx(0.0)
    assert sigmoid(combine(p, "noisy_or")) == pytest.approx(1 - 0.8 * 0.2)
    with pytest.raises(ValueError):
        combine(p, "median")
    with pytest.raises(ValueError):
        combine([], "mean")


def test_case_score_applies_platt_and_threshold():
    metadata = {"case_rule": {"combine": "mean", "a": 2.0, "b": -1.0, "threshold": 0.5}}
    score = case_score([0.5, 0.9], metadata, photo_threshold=0.2)
    assert score.probability == pytest.approx(sigmoid(2 * (math.log(9) / 2) - 1))
    assert score.flagged
    assert not case_score([0.5, 0.5], metadata, photo_threshold=0.2).flagged  # sigmoid(-1) < 0.5
    assert case_threshold(metadata, 0.2) == 0.5


def test_without_a_case_rule_the_top_photo_flags():
    assert case_score([0.1, 0.6], {}, photo_threshold=0.5) == CaseScore(0.6, True)
    assert case_score([0.1, 0.4], {}, photo_threshold=0.5) == CaseScore(0.4, False)
    assert case_threshold({}, 0.5) == 0.5


def synthetic_cases(n=300, seed=0):
    """Cases of 1-3 photos: mpox cases' photo log-odds ~ N(1, 1.5), the rest ~ N(-2, 1.5), each
    photo noisy around its case's level (so averaging helps)."""
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.2
    probabilities = []
    for positive in labels:
        level = rng.normal(1.0 if positive else -2.0, 0.7)
        size = rng.integers(1, 4)
        probabilities.append([float(sigmoid(level + rng.normal(0, 1.5))) for _ in range(size)])
    return probabilities, labels


def test_fitted_rule_reaches_the_sensitivity_target_on_its_cases():
    probabilities, labels = synthetic_cases()
    for how in COMBINERS:
        rule = fit_rule(probabilities, labels, how, 0.95)
        flagged = apply_rule(rule, probabilities) >= rule["threshold"]
        assert flagged[labels].mean() >= 0.95
        assert rule["a"] > 0  # a higher photo score never lowers the case's


def test_chosen_rule_is_one_of_the_combiners_with_inner_cv_figures():
    probabilities, labels = synthetic_cases()
    rule, inner = choose_rule(probabilities, labels, seed=0, target=0.95)
    assert set(inner) == set(COMBINERS) and rule["combine"] in COMBINERS
    best = max(COMBINERS, key=lambda h: (inner[h]["sensitivity"], inner[h]["specificity"]))
    assert rule["combine"] == best


def test_cases_keep_msld_patients_and_draw_other_sources_into_pseudo_cases():
    photos = [Photo(None, "msld_mpox", "mpox", "msld_mpox:M1")] * 2 + [
        Photo(None, "healthy_abdomen", "healthy_skin", f"healthy_abdomen:{i}.jpeg") for i in range(6)
    ]
    cases = form_cases(photos, seed=0)
    assert cases[0] == cases[1] == "msld_mpox:M1"
    assert all(c.startswith("healthy_abdomen:case") for c in cases[2:])
    assert len(set(cases[2:])) == 3  # MSLD's only patient has two photos: pseudo-cases of two


def test_prior_shift_is_identity_at_the_training_prevalence():
    for p in (0.001, 0.3, 0.97):
        assert prior_shift(p, 0.1, 0.1) == pytest.approx(p)


def test_prior_shift_is_monotone_and_moves_with_the_prevalence():
    ps = np.linspace(0.001, 0.999, 200)
    shifted = [prior_shift(p, 0.1, 0.02) for p in ps]
    assert np.all(np.diff(shifted) > 0)
    assert all(s < p for s, p in zip(shifted, ps))  # a rarer disease: every probability lower
    # Bayes: posterior odds = likelihood ratio x prior odds
    assert prior_shift(0.5, 0.1, 0.02) / (1 - prior_shift(0.5, 0.1, 0.02)) == pytest.approx((0.02 / 0.98) / (0.1 / 0.9))
    with pytest.raises(ValueError):
        prior_shift(0.5, 0.1, 0)


def test_shifting_the_threshold_with_the_probabilities_flags_the_same_cases():
    rng = np.random.default_rng(1)
    scores, threshold = rng.random(500), 0.0219
    for prevalence in (0.005, 0.02, 0.3):
        moved = prior_shift(threshold, 0.1, prevalence)
        flagged = [prior_shift(p, 0.1, prevalence) >= moved for p in scores]
        assert flagged == [p >= threshold for p in scores]


def test_training_prevalence_prefers_the_case_rule():
    assert training_prevalence({"prevalence": 0.12, "case_rule": {"prevalence": 0.1}}) == 0.1
    assert training_prevalence({"prevalence": 0.12}) == 0.12
    assert training_prevalence({}) is None


def test_shipped_checkpoint_carries_a_case_rule():
    from pathlib import Path

    from ml.checkpoint import read_checkpoint

    metadata, _ = read_checkpoint(Path(__file__).resolve().parents[2] / "ml/checkpoints/lesion_classifier.pt")
    rule = metadata["case_rule"]
    assert rule["combine"] in COMBINERS and rule["target_sensitivity"] == 0.95 and 0 < rule["prevalence"] < 1


def test_update_metadata_adds_entries_and_keeps_the_weights(tmp_path):
    import torch

    import ml.testing
    from ml.checkpoint import read_checkpoint, update_metadata

    path = ml.testing.make_random_checkpoint(tmp_path / "c.pt", arch="efficientnet_lite0", input_size=32)
    before, weights = read_checkpoint(path)
    update_metadata(path, case_rule={"combine": "mean"}, version="v-caserule")
    after, kept = read_checkpoint(path)
    assert after == {**before, "case_rule": {"combine": "mean"}, "version": "v-caserule"}
    assert all(torch.equal(weights[key], kept[key]) for key in weights)


@pytest.mark.slow
def test_case_rule_command_reports_held_out_cases_and_adds_the_rule_to_a_checkpoint(tmp_path):
    import json

    import ml.testing
    from ml.checkpoint import read_checkpoint, update_metadata
    from ml.research.cli import main
    from tests.ml.test_ml_sources import write_tree

    write_tree(tmp_path / "data")
    checkpoint = ml.testing.make_random_checkpoint(
        tmp_path / "model.pt", arch="efficientnet_lite0", input_size=224, version="tiny"
    )
    with pytest.raises(SystemExit, match="frozen ImageNet backbone"):
        main(["case-rule", "--data-root", str(tmp_path), "--checkpoint", str(checkpoint), "--out", str(tmp_path)])
    update_metadata(checkpoint, head={"method": "probe_as_is"})  # as `python -m ml sources` writes it
    main(
        [
            "case-rule",
            "--data-root",
            str(tmp_path / "data"),
            "--checkpoint",
            str(checkpoint),
            "--out",
            str(tmp_path / "out"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    report = json.loads((tmp_path / "out" / "case_rule.json").read_text())
    assert report["mpox_cases"] == 6  # six MSLD mpox patients, two photos each: one case each
    assert 0 <= report["held_out"]["case_rule"]["sensitivity"]["value"] <= 1
    metadata, _ = read_checkpoint(checkpoint)
    assert metadata["version"] == "tiny-caserule"
    assert metadata["case_rule"]["combine"] in COMBINERS
    assert metadata["case_rule"]["prevalence"] == pytest.approx(report["prevalence"])
