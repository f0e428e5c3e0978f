"""ml helpers behind the live performance pages: Wilson intervals, diagnostic tables, paired AUC
difference, calibration bins, the history model and the score-distribution plot."""

import io

import numpy as np
import pytest
from PIL import Image

from ml.history import fit_history_model, image_logit
from ml.metrics import diagnostic_table, paired_auc_difference, wilson_ci
from ml.plots import plot_score_distribution


@pytest.mark.parametrize(
    ("k", "n", "low", "high"),
    [
        (3, 4, 0.3006, 0.9544),  # Newcombe (1998), table I style closed-form values
        (0, 10, 0.0, 0.2775),
        (10, 10, 0.7225, 1.0),
        (81, 263, 0.2553, 0.3662),
    ],
)
def test_wilson_interval(k, n, low, high):
    assert wilson_ci(k, n) == pytest.approx((low, high), abs=1e-4)


def test_wilson_interval_of_nothing_is_undefined():
    assert all(np.isnan(wilson_ci(0, 0)))


def test_diagnostic_table_counts_and_shares():
    table = diagnostic_table([1, 1, 1, 0, 0, 0, 0], [1, 1, 0, 1, 0, 0, 0])
    assert (table["tp"], table["fn"], table["fp"], table["tn"]) == (2, 1, 1, 3)
    assert (table["sensitivity"]["value"], table["specificity"]["value"]) == (2 / 3, 3 / 4)
    assert (table["ppv"]["value"], table["npv"]["value"]) == (2 / 3, 3 / 4)


def test_paired_auc_difference_keeps_the_pairing():
    labels = np.array([1, 1, 0, 0, 1, 0])
    a = np.array([0.9, 0.4, 0.5, 0.1, 0.6, 0.3])  # 8 of 9 pairs right
    result = paired_auc_difference(labels, a, a, n_boot=200)
    assert result["difference"] == 0 and result["ci95"] == [0.0, 0.0]  # identical models: every resample 0
    better = paired_auc_difference(labels, a, labels * 0.5 + 0.25, n_boot=200)
    assert better["auc_a"] == pytest.approx(8 / 9) and better["difference"] == pytest.approx(1 / 9)


def test_history_model_finds_a_useful_answer():
    rng = np.random.default_rng(0)
    labels = rng.random(200) < 0.3
    score = np.clip(np.where(labels, rng.beta(4, 3, 200), rng.beta(3, 4, 200)), 0.01, 0.99)
    contact = (rng.random(200) < np.where(labels, 0.8, 0.1)).astype(float)
    noise = rng.random(200)
    fit = fit_history_model(
        np.column_stack([image_logit(score), contact, noise]), labels, ["image", "contact", "noise"]
    )
    coefficients = {row["feature"]: row["coefficient"] for row in fit["coefficients"]}
    assert coefficients["contact"] > 1.5 and abs(coefficients["noise"]) < 1
    assert fit["oof_auc"] > 0.8 and len(fit["oof_probabilities"]) == 200


def test_history_model_needs_both_outcomes():
    with pytest.raises(ValueError, match="two cases of each"):
        fit_history_model(np.zeros((5, 1)), [1, 0, 0, 0, 0], ["x"])


def test_score_distribution_plot_is_a_png():
    buffer = io.BytesIO()
    plot_score_distribution([("pos", np.array([0.8, 0.9])), ("neg", np.array([0.1]))], 0.5, buffer, "t")
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "PNG"


def test_resampled_aucs_equal_scikit_learns_with_ties():
    from sklearn.metrics import roc_auc_score

    from ml.metrics import _resampled_aucs

    rng = np.random.default_rng(1)
    labels = rng.random(40) < 0.4
    scores = np.round(rng.random(40), 1)  # many ties
    idx = rng.integers(0, 40, (50, 40))
    expected = [roc_auc_score(labels[row], scores[row]) if 0 < labels[row].sum() < 40 else np.nan for row in idx]
    assert _resampled_aucs(labels.astype(int), scores, idx) == pytest.approx(expected, nan_ok=True)


def test_auc_and_kappa_equal_scikit_learns_without_importing_it():
    """The staff pages compute both in the web process, which never imports scikit-learn."""
    from sklearn.metrics import cohen_kappa_score, roc_auc_score

    from ml.metrics import cohen_kappa, roc_auc

    rng = np.random.default_rng(2)
    for size, decimals in [(2, 1), (9, 1), (40, 1), (40, 3), (200, 6)]:
        labels = np.arange(size) % 2 == 0
        rng.shuffle(labels)
        scores = np.round(rng.random(size), decimals)  # few decimals: many ties
        assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        assert roc_auc(labels.astype(int), scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
        a, b = rng.random(size) < 0.4, rng.random(size) < 0.6
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert np.isnan(roc_auc([1, 1, 1], [0.1, 0.2, 0.3]))
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(cohen_kappa_score([1, 0], [0, 1]))
    assert np.isnan(cohen_kappa([True, True], [True, True])) and np.isnan(cohen_kappa([], []))
