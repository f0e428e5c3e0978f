"""Challenger models: shadow predictions in the same worker call, never shown or used to flag;
comparison on the same confirmed cases; promotion refused with its reason, or recorded."""

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

import ml.testing
from core.models import AuditEvent
from modelops.services import promote_model_version, register_challenger
from registry import versions
from registry.models import ModelPromotion, ModelVersion
from tests.clinic_history import build_history, jpeg_upload
from triage import analysis
from triage.models import Prediction
from triage.selectors import case_for_review
from triage.services import accept_photo

pytestmark = pytest.mark.django_db
TINY_ARCH = "efficientnet_lite0"  # the lighter of the two architectures to build and run


@pytest.fixture
def active_and_challenger(tmp_path, settings):
    """Two tiny random checkpoints: the active one never flags (threshold 1), the challenger always would (0)."""
    settings.MODEL_DIR = tmp_path / "active"
    settings.MODEL_DIR.mkdir()
    ml.testing.make_random_checkpoint(
        settings.MODEL_DIR / "a.pt", arch=TINY_ARCH, input_size=64, threshold=1.0, version="tiny-active"
    )
    (active,) = versions.register_checkpoints()
    path = ml.testing.make_random_checkpoint(
        tmp_path / "c.pt", arch=TINY_ARCH, input_size=64, threshold=0.0, version="tiny-challenger"
    )
    challenger = register_challenger(checkpoint_path=path)
    return active, challenger


def test_challenger_scores_every_new_photo_in_shadow(
    active_and_challenger, appointment, patient, private_storage, enqueued
):
    active, challenger = active_and_challenger
    assert (active.status, challenger.status) == (ModelVersion.Status.ACTIVE, ModelVersion.Status.CHALLENGER)
    photo = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=jpeg_upload(1),
        body_site="hands",
        roi=(20, 20, 120, 100),
    )

    (prediction,) = analysis.analyse_photos([photo.pk])

    shadow = Prediction.objects.get(role=Prediction.Role.CHALLENGER)
    assert (prediction.model_version, shadow.model_version) == (active, challenger)
    assert shadow.photo == photo and shadow.roi == prediction.roi == (20, 20, 120, 100)
    assert shadow.flagged and not prediction.flagged  # the challenger's threshold is 0
    assert not shadow.heatmap
    appointment.case.refresh_from_db()
    assert not appointment.case.flagged  # only the active model flags
    assert list(Prediction.objects.active().all()) == [prediction]  # hidden from staff and patient pages
    review = case_for_review(appointment.case.pk, site_ids=None)
    assert [p.pk for p in review.photos.get().prediction_history] == [prediction.pk]


def test_a_broken_challenger_never_costs_the_active_result(
    active_and_challenger, appointment, patient, private_storage, enqueued, monkeypatch
):
    _, challenger = active_and_challenger
    monkeypatch.setattr(versions, "_models_by_version", {})  # a fresh worker process: nothing loaded yet
    ModelVersion.objects.filter(pk=challenger.pk).update(checkpoint_path="/nonexistent/broken.pt")
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=jpeg_upload(2), body_site="hands")
    (prediction,) = analysis.analyse_photos([photo.pk])
    photo.refresh_from_db()
    assert photo.status == photo.Status.ANALYSED and prediction.role == Prediction.Role.ACTIVE
    assert not Prediction.objects.filter(role=Prediction.Role.CHALLENGER).exists()


def test_the_active_model_cannot_be_its_own_challenger(model_version):
    with pytest.raises(ValueError):
        versions.make_challenger(model_version)


# Comparison and promotion on the synthetic history: the challenger's scores (tests/clinic_history.py)
#   positives 0.95 0.80 0.70 0.60 -> all 4 flagged at 0.5 (active: 3 of 4)
#   AUC: pairs ranked right 7 + 7 + 7 + 6.5 (0.60 ties the pending 0.60 negative) = 27.5 of 28; active 22 of 28.


@pytest.fixture
def challenger_history(
    settings, patient, clinician, clinic, model_version, private_storage, enqueued, make_image_bytes
):
    challenger = ModelVersion.objects.create(
        version="test-challenger",
        architecture="tiny",
        checkpoint_path="/nonexistent/c.pt",
        threshold=0.5,
        is_challenger=True,
    )
    build_history(
        patient=patient,
        clinician=clinician,
        clinic=clinic,
        active=model_version,
        challenger=challenger,
        heatmap_jpeg=make_image_bytes(size=(64, 64)),
    )
    settings.PROMOTION_MIN_CONFIRMED_CASES = 11
    settings.PERFORMANCE_BOOTSTRAP_SAMPLES = 300
    return challenger


def test_comparison_on_the_same_cases(challenger_history, model_version, client, clinician):
    from modelops.performance import compare_models

    figures = compare_models(model_version, challenger_history).figures
    assert (figures["paired_cases"], figures["positives"]) == (11, 4)
    auc = figures["auc_difference"]
    assert (auc["auc_a"], auc["auc_b"]) == (pytest.approx(22 / 28), pytest.approx(27.5 / 28))
    assert auc["difference"] == pytest.approx(5.5 / 28)
    assert auc["ci95"][0] <= auc["difference"] <= auc["ci95"][1]
    at_active_threshold = figures["thresholds"][0]
    assert at_active_threshold["active"]["sensitivity"]["successes"] == 3
    assert at_active_threshold["challenger"]["sensitivity"]["successes"] == 4
    assert at_active_threshold["challenger"]["specificity"]["successes"] == 6  # only the 0.60 negative flagged
    assert figures["promotion_refusal"] is None

    client.force_login(clinician)
    page = client.get(reverse("staff-comparison")).content.decode()
    assert "11 shared confirmed cases" in page and "0.196" in page and "data:image/png" in page


def test_promotion_is_refused_below_the_minimum_of_confirmed_cases(
    settings, challenger_history, model_version, admin_user
):
    settings.PROMOTION_MIN_CONFIRMED_CASES = 12
    with pytest.raises(ValidationError, match="has 11 lab-confirmed cases .* needs at least 12"):
        promote_model_version(model_version=challenger_history, promoted_by=admin_user, reason="Better AUC")
    assert ModelVersion.objects.get(is_active=True) == model_version
    assert (
        AuditEvent.objects.get(action="promote_model", allowed=False)
        .detail["refusal"]
        .startswith("test-challenger has 11")
    )


def test_promotion_is_refused_when_the_challenger_misses_more_mpox(challenger_history, model_version, admin_user):
    # The challenger's 0.60 positive falls below its threshold if that is 0.65: it then flags 3 of 4 ...
    ModelVersion.objects.filter(pk=challenger_history.pk).update(threshold=0.75)
    challenger_history.refresh_from_db()
    # ... and at 0.75 only 0.95 and 0.80: 2 of 4 against the active model's 3 of 4.
    with pytest.raises(
        ValidationError, match="test-challenger is worse on sensitivity: it flags 2 of 4 .* test-model-1 3 of 4"
    ):
        promote_model_version(model_version=challenger_history, promoted_by=admin_user, reason="Fewer false alarms")
    assert not ModelPromotion.objects.exists()


def test_promotion_through_admin_records_who_and_why(challenger_history, model_version, admin_client, admin_user):
    url = reverse("admin:registry_modelversion_changelist")
    form = admin_client.post(url, {"action": "promote", "_selected_action": [challenger_history.pk]})
    assert b"Why is this model being promoted?" in form.content
    admin_client.post(
        url,
        {
            "action": "promote",
            "_selected_action": [challenger_history.pk],
            "apply": "1",
            "reason": "Higher sensitivity on 11 shared confirmed cases",
        },
    )
    promotion = ModelPromotion.objects.get()
    assert (promotion.model_version, promotion.replaced, promotion.promoted_by) == (
        challenger_history,
        model_version,
        admin_user,
    )
    assert promotion.reason == "Higher sensitivity on 11 shared confirmed cases"
    assert promotion.evidence["own_threshold"]["challenger"]["sensitivity"]["successes"] == 4
    statuses = {v.version: v.status for v in ModelVersion.objects.all()}
    assert statuses == {"test-challenger": ModelVersion.Status.ACTIVE, "test-model-1": ModelVersion.Status.RETIRED}
    assert AuditEvent.objects.filter(action="promote_model", allowed=True, actor=admin_user).exists()


def test_admin_refuses_a_retired_version_and_says_why(challenger_history, model_version, admin_client):
    retired = ModelVersion.objects.create(version="old", architecture="tiny", checkpoint_path="/x.pt", threshold=0.5)
    response = admin_client.post(
        reverse("admin:registry_modelversion_changelist"),
        {"action": "promote", "_selected_action": [retired.pk], "apply": "1", "reason": "roll back"},
        follow=True,
    )
    assert "Promotion refused: old is not the challenger" in response.content.decode()
    assert ModelVersion.objects.get(is_active=True) == model_version
