"""Live model performance on a synthetic clinic history, every figure against a hand computation.

The history (tests/clinic_history.py), active threshold 0.5, one photo per case:
  lab positive: scores 0.90 0.70 0.60 0.30; clinicians S S N S
  lab negative: scores 0.80 0.40 0.20 0.10 0.55 0.05 0.45; clinicians S N N N pending N N
Model at 0.5: TP 3 (0.9, 0.7, 0.6), FN 1 (0.3), FP 2 (0.8, 0.55), TN 5.
AUC: positive-negative pairs ranked right: 7 + 6 + 6 + 3 = 22 of 4 x 7 = 28.
Clinicians (10 decided): TP 3, FN 1 (the 0.6 case), FP 1 (the 0.8 case), TN 5.
Agreement (10 decided and scored): disagree on the 0.6 (flagged, not suspected) and 0.3 (suspected,
not flagged) cases: 8/10; both say yes 4 times of 10, so chance agreement .4*.4+.6*.6 = .52 and
kappa = (.8 - .52) / .48 = 0.5833.
Wilson 95 % intervals (closed form): 3/4 -> 0.3006-0.9544, 5/7 -> 0.3589-0.9178, 3/5 -> 0.2307-0.8824,
5/6 -> 0.4365-0.9699, 8/10 -> 0.4902-0.9433.
"""

import json
import sys
from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from sklearn.calibration import calibration_curve

from core.models import AuditEvent
from modelops import performance
from portal.booking.models import Clinic
from registry.models import HistoryModel, ModelVersion
from tests.clinic_history import HISTORY, build_history
from triage.history import HISTORY_FEATURES, history_features
from triage.models import LabResult

pytestmark = pytest.mark.django_db

HEAVY = ("matplotlib", "sklearn", "scipy")


def refuse_heavy_imports(monkeypatch):
    """Any import of matplotlib, scikit-learn or SciPy raises from here on, even of a module this
    test process loaded before (its sys.modules entries are set to None)."""
    for name in [name for name in sys.modules if name.split(".")[0] in HEAVY] + list(HEAVY):
        monkeypatch.setitem(sys.modules, name, None)


def close(figure, value, low, high):
    assert figure["value"] == pytest.approx(value)
    assert figure["ci95"] == pytest.approx([low, high], abs=1e-4)


@pytest.fixture
def clinician_client(client, clinician):
    client.force_login(clinician)
    return client


@pytest.fixture
def history(settings, patient, clinician, clinic, model_version, private_storage, enqueued, make_image_bytes):
    settings.PERFORMANCE_MIN_CONFIRMED_CASES = 10
    return build_history(
        patient=patient,
        clinician=clinician,
        clinic=clinic,
        active=model_version,
        heatmap_jpeg=make_image_bytes(size=(64, 64)),
    )


def test_every_figure_matches_the_hand_computation(history, model_version):
    figures = performance.model_performance(model_version).figures
    assert (figures["confirmed_cases"], figures["assessed_cases"], figures["positives"], figures["negatives"]) == (
        11,
        11,
        4,
        7,
    )
    assert figures["enough"]
    table = figures["at_threshold"]
    assert (table["tp"], table["fp"], table["fn"], table["tn"]) == (3, 2, 1, 5)
    close(table["sensitivity"], 3 / 4, 0.3006, 0.9544)
    close(table["specificity"], 5 / 7, 0.3589, 0.9178)
    close(table["ppv"], 3 / 5, 0.2307, 0.8824)
    close(table["npv"], 5 / 6, 0.4365, 0.9699)
    assert figures["auc"] == pytest.approx(22 / 28)

    clinicians = figures["clinicians"]
    assert (clinicians["tp"], clinicians["fp"], clinicians["fn"], clinicians["tn"]) == (3, 1, 1, 5)
    close(clinicians["sensitivity"], 3 / 4, 0.3006, 0.9544)
    close(clinicians["specificity"], 5 / 6, 0.4365, 0.9699)
    agreement = figures["agreement"]
    close(agreement["agree"], 8 / 10, 0.4902, 0.9433)
    assert agreement["kappa"] == pytest.approx(0.28 / 0.48)
    assert (agreement["clinician_suspected_model_not"], agreement["model_flagged_clinician_not"]) == (1, 1)

    positive = figures["score_distribution"]["lab_positive"]
    assert (positive["n"], positive["median"], positive["q1"], positive["q3"]) == (
        4,
        pytest.approx(0.65),
        pytest.approx(0.525),
        pytest.approx(0.75),
    )
    assert figures["score_distribution"]["lab_negative"]["median"] == pytest.approx(0.40)


def test_live_figures_score_and_flag_cases_by_the_models_case_rule(history, model_version):
    """One photo per case: the case rule (identity Platt) keeps each score and flags at its own
    threshold 0.25, not the photo threshold 0.5, as the worker flags the queue."""
    rule = {"combine": "mean", "a": 1.0, "b": 0.0, "threshold": 0.25, "prevalence": 0.1}
    ModelVersion.objects.filter(pk=model_version.pk).update(metadata={"case_rule": rule})
    model_version.refresh_from_db()
    figures = performance.model_performance(model_version).figures
    table = figures["at_threshold"]
    assert figures["threshold"] == 0.25
    assert (table["tp"], table["fp"], table["fn"], table["tn"]) == (4, 4, 0, 3)
    assert figures["auc"] == pytest.approx(22 / 28)


def test_calibration_bins_are_the_ones_scikit_learn_draws(history, model_version):
    figures = performance.model_performance(model_version).figures
    labels = [lab == LabResult.Result.POSITIVE for lab, *_ in HISTORY]
    scores = [score for _, score, *_ in HISTORY]
    observed, predicted = calibration_curve(labels, scores, n_bins=5, strategy="quantile")
    assert [row["observed"] for row in figures["calibration"]] == pytest.approx(observed.tolist())
    assert [row["mean_score"] for row in figures["calibration"]] == pytest.approx(predicted.tolist())
    assert sum(row["n"] for row in figures["calibration"]) == 11


def test_a_correction_changes_the_truth_and_cases_without_a_pcr_result_do_not_count(history, model_version, clinician):
    from triage.services import record_ground_truth

    # The 0.30 positive was a lab mix-up: corrected to negative, it becomes a true negative.
    record_ground_truth(
        case=history[3],
        entered_by=clinician,
        result=LabResult.Result.NEGATIVE,
        result_date=timezone.localdate(),
        note="Sample swapped; repeat PCR negative.",
    )
    record_ground_truth(
        case=history[0], entered_by=clinician, result=LabResult.Result.NOT_TESTED, note="Entered on the wrong case."
    )
    figures = performance.model_performance(model_version).figures
    table = figures["at_threshold"]
    assert (figures["confirmed_cases"], table["tp"], table["fn"], table["fp"], table["tn"]) == (10, 2, 0, 2, 6)


def test_filters_by_date_range_and_clinic_site(history, model_version):
    other_site = Clinic.objects.create(name="Other site")
    # Cases are 10..20 days old, one a day; move the two oldest to the other site.
    from portal.booking.models import Slot

    Slot.objects.filter(appointments__case__in=history[-2:]).update(clinic=other_site)
    today = timezone.localdate()
    at_other = performance.model_performance(model_version, clinic_id=other_site.pk).figures
    assert (at_other["confirmed_cases"], at_other["negatives"]) == (2, 2)
    recent = performance.model_performance(model_version, start=today - timedelta(days=12), end=today).figures
    assert recent["confirmed_cases"] == 3  # 10, 11 and 12 days old: the 0.90, 0.70 and 0.60 positives
    assert recent["at_threshold"]["tp"] == 3


def test_too_few_cases_gives_an_empty_state_not_figures(settings, history, model_version, clinician_client):
    settings.PERFORMANCE_MIN_CONFIRMED_CASES = 12
    figures = performance.model_performance(model_version).figures
    assert not figures["enough"] and figures["calibration"] == []
    page = clinician_client.get(reverse("staff-performance")).content.decode()
    assert "Figures need at least 12 lab-confirmed cases" in page and "there are 11 so far" in page
    assert "data:image/png" not in page


def test_alert_when_live_sensitivity_is_below_the_model_card_beyond_its_ci(history, model_version, admin_client):
    model_version.metadata = {"cv_metrics": {"at_threshold": {"sensitivity": {"mean": 0.95}}}}
    model_version.save()
    # 3/4 flagged: the Wilson upper end 0.954 still reaches 0.95, so no alert.
    assert performance.model_performance(model_version).figures["alert"] is None
    model_version.metadata = {"cv_metrics": {"at_threshold": {"sensitivity": {"mean": 0.97}}}}
    model_version.save()
    alert = performance.model_performance(model_version).figures["alert"]
    assert "75% (3 of 4 lab-confirmed mpox cases flagged; 95% CI 30%–95%), below the 97%" in alert
    changelist = admin_client.get(reverse("admin:registry_modelversion_changelist")).content.decode()
    assert "below the 97% its model card promises" in changelist


def test_performance_page_shows_plots_beside_their_numbers(history, model_version, clinician_client):
    response = clinician_client.get(reverse("staff-performance"))
    page = response.content.decode()
    assert response.status_code == 200
    assert page.count("data:image/png;base64,") == 3  # ROC, reliability, score distribution
    assert "75% (95% CI 30%–95%; 3/4)" in page  # sensitivity
    assert "0.786" in page  # AUC 22/28
    assert "80% (95% CI 49%–94%; 8/10)" in page  # clinician-model agreement
    assert AuditEvent.objects.filter(action="view_model_performance", actor__username="clinician").exists()


def test_performance_pages_are_for_clinicians_only(history, client, patient):
    client.force_login(patient)
    assert client.get(reverse("staff-performance")).status_code == 403
    assert client.get(reverse("staff-comparison")).status_code == 403


def test_bad_filter_is_explained(history, clinician_client):
    page = clinician_client.get(
        reverse("staff-performance"), {"start": "2026-02-01", "end": "2026-01-01"}
    ).content.decode()
    assert "The start date is after the end date." in page


def test_command_prints_and_writes_the_page_figures(history, model_version, tmp_path, capsys):
    out = tmp_path / "perf.json"
    call_command("model_performance", "--version", model_version.version, "--json", str(out))
    printed = capsys.readouterr().out
    assert "sensitivity  0.750 [0.301, 0.954] (3/4)" in printed
    (written,) = json.loads(out.read_text())["versions"]
    assert written == performance.json_ready(performance.model_performance(model_version).figures)
    assert written["at_threshold"]["npv"]["successes"] == 5


def test_history_and_image_model_is_fitted_once_enough_cases_exist(settings, history, model_version):
    settings.HISTORY_MODEL_MIN_CONFIRMED_CASES = 12
    assert performance.history_model(model_version) == {"needed": 12, "have": 11, "fitted": False}
    settings.HISTORY_MODEL_MIN_CONFIRMED_CASES = 11
    fit = performance.history_model(model_version)
    assert fit["fitted"] and fit["n"] == 11 and fit["positives"] == 4
    assert [row["feature"] for row in fit["coefficients"]] == list(HISTORY_FEATURES)
    assert fit["image_only_auc"] == pytest.approx(22 / 28)
    # Every case had a genital photo and no questionnaire: those features are constant.
    image_coefficient = fit["coefficients"][0]["coefficient"]
    assert image_coefficient > 0 and np.isfinite(fit["oof_auc"])


def test_history_features_read_the_questionnaire_defensively(history):
    case = history[0]
    onset = case.appointment.slot.starts_at.date() - timedelta(days=3)
    case.appointment.questionnaire = {
        "close_contact": "yes",
        "fever": "yes",
        "vaccination": "none",
        "lesion_sites": ["mouth", "hands"],
        "onset_date": onset.isoformat(),
        "unknown": 3,
    }
    features = history_features(case, 0.5)
    assert features == [0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 3.0, 1.0]
    case.appointment.questionnaire = "not a dict"
    assert history_features(case, 0.5)[1:5] == [0.0, 0.0, 0.0, 0.0]


def test_seed_demo_history_fills_the_performance_and_comparison_pages(private_storage, enqueued, client, monkeypatch):
    call_command("seed_demo", stdout=None)
    active, challenger = ModelVersion.objects.get(is_active=True), ModelVersion.objects.get(is_challenger=True)
    figures = performance.model_performance(active).figures
    assert figures["enough"] and figures["positives"] >= 5 and figures["negatives"] >= 20
    assert 0.75 < figures["auc"] < 0.99  # invented scores drawn to look like a useful model
    from django.contrib.auth.models import User

    client.force_login(User.objects.get(username="clinician"))
    comparison = client.get(reverse("staff-comparison")).content.decode()
    with monkeypatch.context() as patch:  # seed_demo stored the charts: the page's first view draws nothing
        refuse_heavy_imports(patch)
        assert client.get(reverse("staff-performance")).content.decode().count("data:image/png") >= 3
    assert challenger.version in comparison and "shared confirmed cases" in comparison
    history_model = HistoryModel.objects.get()  # fitted on the first four weeks, measured on the rest
    assert history_model.image_model == active and history_model.fitted_cases >= 40
    assert (
        f"History and image: {performance.compare_history_model(history_model).figures['paired_cases']} shared"
        in comparison
    )
