"""History + image model as a version: fitted and kept, compared with the image score alone on
confirmed cases it was not fitted on, promoted by the challenger's rule, then flagging new cases.

A hand-set version on the synthetic history (tests/clinic_history.py, image threshold 0.5):
  combined log-odds z = -1 + logit(image score) + 3 × close contact (other coefficients 0), threshold 0.5,
  so a case flags when z >= 0: image score >= 0.731 without contact, >= 0.119 with it.
  Contact answered "yes" on cases 1 (pos 0.70), 2 (pos 0.60), 3 (pos 0.30) and 6 (neg 0.20).
  Positives 0.90, 0.70c, 0.60c, 0.30c: all 4 flagged (the image score alone: 3 of 4).
  Negatives 0.80 flagged, 0.20c flagged, the other 5 not: specificity 5/7 (the image score alone: 5/7).
  z: positives 1.197 2.847 2.405 1.153; negatives 0.386 -1.405 0.614 -3.197 -0.799 -3.944 -1.201:
  every positive above every negative, AUC 1 against the image score's 22/28.
"""

import math

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.urls import reverse

from core.models import AuditEvent
from modelops import performance
from modelops.services import promote_history_model, register_history_model
from registry import versions
from registry.models import HistoryModel, ModelPromotion, ModelVersion
from tests.clinic_history import book_past_case, build_history, record_score
from triage.history import HISTORY_FEATURES
from triage.models import Case

pytestmark = pytest.mark.django_db
CONTACT_CASES = (1, 2, 3, 6)


def logistic(z):
    return 1 / (1 + math.exp(-z))


def logit(p):
    return math.log(p / (1 - p))


@pytest.fixture
def history(settings, patient, clinician, clinic, model_version, private_storage, enqueued, make_image_bytes):
    settings.PROMOTION_MIN_CONFIRMED_CASES = 11
    settings.PERFORMANCE_BOOTSTRAP_SAMPLES = 300
    cases = build_history(
        patient=patient,
        clinician=clinician,
        clinic=clinic,
        active=model_version,
        heatmap_jpeg=make_image_bytes(size=(64, 64)),
    )
    for index in CONTACT_CASES:
        appointment = cases[index].appointment
        appointment.questionnaire = {**appointment.questionnaire, "close_contact": "yes"}
        appointment.save(update_fields=["questionnaire"])
    return cases


@pytest.fixture
def contact_model(model_version):
    return HistoryModel.objects.create(
        version="history-hand",
        image_model=model_version,
        features=list(HISTORY_FEATURES),
        coefficients=[1.0, 3.0, 0, 0, 0, 0, 0, 0],
        intercept=-1.0,
        threshold=0.5,
        fitted_cases=0,
        fitted_positives=0,
    )


def test_combined_score_is_the_stored_logistic_regression(history, contact_model):
    image_scores = performance.case_scores(contact_model.image_model, [case.pk for case in history])
    scores = performance.history_scores(contact_model, image_scores)
    assert scores[history[3].pk] == pytest.approx(logistic(-1 + logit(0.3) + 3))
    assert scores[history[4].pk] == pytest.approx(logistic(-1 + logit(0.8)))


def test_compared_with_the_image_score_alone_on_the_same_cases(history, contact_model):
    figures = performance.compare_history_model(contact_model).figures
    assert (figures["paired_cases"], figures["positives"]) == (11, 4)
    own = figures["own_threshold"]
    assert (own["active"]["sensitivity"]["successes"], own["challenger"]["sensitivity"]["successes"]) == (3, 4)
    assert (own["active"]["specificity"]["successes"], own["challenger"]["specificity"]["successes"]) == (5, 5)
    auc = figures["auc_difference"]
    assert (auc["auc_a"], auc["auc_b"]) == (pytest.approx(22 / 28), pytest.approx(1.0))
    assert figures["promotion_refusal"] is None


def test_refused_by_the_challengers_rule(settings, history, contact_model, admin_user):
    settings.PROMOTION_MIN_CONFIRMED_CASES = 12
    with pytest.raises(ValidationError, match="has 11 lab-confirmed cases .* needs at least 12"):
        promote_history_model(history_model=contact_model, promoted_by=admin_user, reason="Contact matters")
    settings.PROMOTION_MIN_CONFIRMED_CASES = 11
    # At 0.9 (z >= 2.197) only the 0.70 and 0.60 positives with contact are flagged: 2 of 4 against 3 of 4.
    HistoryModel.objects.filter(pk=contact_model.pk).update(threshold=0.9)
    contact_model.refresh_from_db()
    with pytest.raises(
        ValidationError,
        match="history-hand is worse on sensitivity: it flags 2 of 4 .* test-model-1 \\(image score alone\\) 3 of 4",
    ):
        promote_history_model(history_model=contact_model, promoted_by=admin_user, reason="Fewer false alarms")
    assert not ModelPromotion.objects.exists() and versions.active_history_model() is None
    assert AuditEvent.objects.filter(action="promote_model", allowed=False, object_type="historymodel").count() == 2


def test_cases_it_was_fitted_on_are_left_out_of_its_comparison(settings, history, contact_model):
    settings.PROMOTION_MIN_CONFIRMED_CASES = 7
    HistoryModel.objects.filter(pk=contact_model.pk).update(fitted_case_ids=[case.pk for case in history[:4]])
    contact_model.refresh_from_db()
    figures = performance.compare_history_model(contact_model).figures
    assert (figures["paired_cases"], figures["positives"]) == (7, 0)
    assert "None of the shared confirmed cases is mpox PCR positive" in figures["promotion_refusal"]


def test_once_promoted_its_combined_score_flags_new_cases(
    history, contact_model, model_version, admin_user, patient, clinic, make_image_bytes, client, clinician
):
    promotion = promote_history_model(history_model=contact_model, promoted_by=admin_user, reason="Sensitivity 4/4")
    assert (promotion.history_model, promotion.model_version, promotion.promoted_by) == (
        contact_model,
        model_version,
        admin_user,
    )
    assert promotion.evidence["own_threshold"]["challenger"]["sensitivity"]["successes"] == 4
    assert versions.active_history_model() == contact_model

    heatmap = make_image_bytes(size=(64, 64))
    contact_case, contact_photo = book_past_case(patient=patient, clinic=clinic, days_ago=1, seed=40)
    contact_case.appointment.questionnaire = {"close_contact": "yes"}
    contact_case.appointment.save(update_fields=["questionnaire"])
    record_score(contact_photo, model_version, 0.3, heatmap)  # below the image threshold, contact: flagged
    plain_case, plain_photo = book_past_case(patient=patient, clinic=clinic, days_ago=1, seed=41)
    record_score(plain_photo, model_version, 0.6, heatmap)  # above the image threshold, no contact: not flagged

    contact_case, plain_case = Case.objects.get(pk=contact_case.pk), Case.objects.get(pk=plain_case.pk)
    assert contact_case.flagged and contact_case.history_model == contact_model
    assert contact_case.history_score == pytest.approx(logistic(-1 + logit(0.3) + 3))
    assert not plain_case.flagged and plain_case.history_score == pytest.approx(logistic(-1 + logit(0.6)))
    assert plain_case.max_probability == pytest.approx(0.6)  # the image score is still kept and shown
    client.force_login(clinician)
    page = client.get(reverse("staff-case", args=[contact_case.pk])).content.decode()
    assert "Flag set by the history + image model history-hand: combined score 76%" in page


def test_promoting_another_image_model_retires_it(history, contact_model, admin_user):
    versions.activate_history_model(contact_model)
    challenger = ModelVersion.objects.create(
        version="next", architecture="tiny", checkpoint_path="/x.pt", threshold=0.5, is_challenger=True
    )
    versions.activate_model_version(challenger)
    contact_model.refresh_from_db()
    assert contact_model.status == HistoryModel.Status.RETIRED and versions.active_history_model() is None
    with pytest.raises(ValidationError, match="not the active model"):
        promote_history_model(history_model=contact_model, promoted_by=admin_user, reason="again")


def test_registered_from_the_fit_with_who_and_what(settings, history, model_version, clinician, capsys):
    settings.HISTORY_MODEL_MIN_CONFIRMED_CASES = 12
    with pytest.raises(ValidationError, match="needs 12 lab-confirmed cases .* there are 11"):
        register_history_model(fitted_by=clinician)
    settings.HISTORY_MODEL_MIN_CONFIRMED_CASES = 11
    fit = performance.history_model(model_version)
    call_command("register_history_model", "--by", clinician.username)
    stored = HistoryModel.objects.get()
    assert stored.coefficients == pytest.approx([row["coefficient"] for row in fit["coefficients"]])
    assert stored.features == list(HISTORY_FEATURES) and stored.intercept == pytest.approx(fit["intercept"])
    assert (stored.fitted_cases, stored.fitted_positives, stored.fitted_by) == (11, 4, clinician)
    assert sorted(stored.fitted_case_ids) == sorted(case.pk for case in history)
    assert stored.status == HistoryModel.Status.CANDIDATE and not Case.objects.filter(history_model=stored).exists()
    # Its threshold flags, out of fold, as many positives as the image score does at 0.5 (3 of 4).
    positives_oof = fit["oof_probabilities"][:4]  # cases in id order, the history's rows 0-3
    assert sum(p >= stored.threshold for p in positives_oof) == 3
    assert "history-1 on test-model-1: fitted on 11 lab-confirmed cases" in capsys.readouterr().out
    # Every confirmed case was used to fit it: nothing left to compare it on yet.
    assert "has 0 lab-confirmed cases" in performance.compare_history_model(stored).figures["promotion_refusal"]


def test_admin_promotes_it_and_the_pages_show_it(history, contact_model, admin_client, admin_user, client, clinician):
    url = reverse("admin:registry_historymodel_changelist")
    form = admin_client.post(url, {"action": "promote", "_selected_action": [contact_model.pk]}).content.decode()
    assert "Why is this model being promoted?" in form and "the image score of test-model-1 alone" in form
    admin_client.post(
        url,
        {
            "action": "promote",
            "_selected_action": [contact_model.pk],
            "apply": "1",
            "reason": "Contact history finds the 0.30 positive",
        },
    )
    assert ModelPromotion.objects.get().history_model == contact_model
    client.force_login(clinician)
    comparison = client.get(reverse("staff-comparison")).content.decode()
    assert "History and image: 11 shared confirmed cases" in comparison and "Image score alone" in comparison
    performance_page = client.get(reverse("staff-performance")).content.decode()
    assert "history-hand" in performance_page and "New cases are flagged by its combined score" in performance_page
