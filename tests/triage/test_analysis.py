"""The worker's pipeline in-process: registry, three outcomes, idempotent analysis, flagging rule."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError
from django.urls import reverse
from PIL import Image, ImageDraw, ImageFilter

import ml.testing
from registry import versions
from registry.models import ModelVersion
from triage import analysis
from triage.models import Case, Photo, PhotoOutcome, PhotoReason, Prediction, RoiSource, reason_for_patient
from triage.services import accept_photo


@pytest.fixture
def tiny_model(tmp_path, settings, db):
    """A random 64-px EfficientNet-Lite0 checkpoint (the shipped architecture, and a fifth of
    DenseNet-121's cost per analysis), registered and active; threshold 0.5."""
    settings.MODEL_DIR = tmp_path
    ml.testing.make_random_checkpoint(
        tmp_path / "tiny.pt", arch="efficientnet_lite0", input_size=64, threshold=0.5, version="tiny-1"
    )
    (model_version,) = versions.register_checkpoints()
    return model_version


def lesion_image(size=(320, 240), seed=0):
    """Textured skin with a dark red spot."""
    width, height = size
    rng = np.random.default_rng(seed)
    skin = np.array([214, 170, 140], dtype=np.float32) + rng.normal(0, 10, size=(height, width, 3))
    image = Image.fromarray(np.clip(skin, 0, 255).astype(np.uint8))
    ImageDraw.Draw(image).ellipse((width * 0.3, height * 0.3, width * 0.6, height * 0.7), fill=(140, 60, 60))
    return image


def upload(image, name="lesion.jpg"):
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=92)
    return SimpleUploadedFile(name, buffer.getvalue(), "image/jpeg")


def lesion_upload(size=(320, 240)):
    return upload(lesion_image(size))


@pytest.fixture
def judging_model(tmp_path, settings, db):
    """A random checkpoint with an assessability rule fitted on sharp lesion photos; threshold 0,
    so every assessable photo is suspected and only assessability decides."""
    settings.MODEL_DIR = tmp_path
    examples = [lesion_image(seed=seed) for seed in range(6)]
    ml.testing.make_random_checkpoint(
        tmp_path / "judge.pt",
        arch="efficientnet_lite0",
        input_size=64,
        threshold=0.0,
        version="judge-1",
        assessable_examples=examples,
    )
    (model_version,) = versions.register_checkpoints()
    return model_version


def test_first_registered_checkpoint_becomes_active_and_registering_again_is_a_no_op(tiny_model):
    assert tiny_model.is_active and tiny_model.architecture == "efficientnet_lite0"
    assert ModelVersion.objects.get().threshold == 0.5
    assert versions.register_checkpoints() == []


def test_a_checkpoint_replaced_under_the_same_name_is_refused_not_mislabelled(tiny_model, tmp_path, monkeypatch):
    """A new checkpoint shipped under an installed version's file name: loading it for the old version
    fails loudly, so no result is recorded under a model that did not make it."""
    ml.testing.make_random_checkpoint(
        tmp_path / "tiny.pt", arch="efficientnet_lite0", input_size=64, threshold=0.5, version="tiny-2"
    )
    monkeypatch.setattr(versions, "_models_by_version", {})  # a fresh worker process: nothing loaded yet

    with pytest.raises(versions.CheckpointReplaced, match="now holds tiny-2, not tiny-1"):
        versions.loaded_model(tiny_model)

    (replacement,) = versions.register_checkpoints()  # what `manage.py register_models` does on upgrade
    assert replacement.version == "tiny-2" and versions.active_model_version() == replacement
    assert versions.loaded_model(replacement).metadata["version"] == "tiny-2"


def test_with_the_onnx_runtime_registration_exports_and_the_worker_runs_the_export(
    tmp_path, settings, monkeypatch, appointment, patient, private_storage, enqueued
):
    """ML_RUNTIME=onnx: registering writes the checkpoint's export beside it, the analysis runs that
    export on ONNX Runtime (tests/ml/test_ml_ort.py: equal to torch); after the checkpoint is
    replaced in place the stale export is refused."""
    settings.MODEL_DIR, settings.ML_RUNTIME = tmp_path, "onnx"
    monkeypatch.setattr(versions, "_models_by_version", {})
    checkpoint = ml.testing.make_random_checkpoint(tmp_path / "tiny.pt", arch="efficientnet_lite0", version="lite-1")
    (model_version,) = versions.register_checkpoints()
    assert {path.name for path in tmp_path.glob("tiny.*")} == {"tiny.pt", "tiny.onnx", "tiny.heads.npz"}
    photo = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=lesion_upload(),
        body_site="trunk",
        roi=(90, 60, 210, 180),
    )
    (prediction,) = analysis.analyse_photos([photo.pk])
    assert prediction.model_version == model_version and 0 <= prediction.probability <= 1
    assert type(versions.loaded_model(model_version).backbone).__name__ == "OrtBackbone"

    ml.testing.make_random_checkpoint(checkpoint, arch="efficientnet_lite0", version="lite-2")
    monkeypatch.setattr(versions, "_models_by_version", {})
    with pytest.raises(ml.CheckpointError, match="stale"):
        versions.loaded_model(model_version)


def test_without_a_model_photos_wait_and_get_no_score(appointment, patient, private_storage, enqueued):
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    assert analysis.analyse_photos([photo.pk]) == []
    photo.refresh_from_db()
    assert photo.status == Photo.Status.NO_MODEL
    assert not Prediction.objects.active().exists()


def test_an_automatic_box_is_shown_and_the_case_page_says_the_whole_photo_was_scored(
    tiny_model, appointment, patient, clinician, client, private_storage, enqueued
):
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    (prediction,) = analysis.analyse_photos([photo.pk])
    assert prediction.roi_source == RoiSource.AUTO and prediction.roi is not None
    assert prediction.roi_scored is False
    client.force_login(clinician)
    page = client.get(reverse("staff-case", args=[appointment.case.pk])).content.decode()
    assert "where the model found the lesion; it scored the whole photo" in page
    assert "what the model scored" not in page


def test_analysis_stores_a_prediction_once_and_a_rerun_skips_it(
    tiny_model, appointment, patient, private_storage, enqueued
):
    photo = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=lesion_upload(),
        body_site="trunk",
        roi=(90, 60, 210, 180),
    )
    (prediction,) = analysis.analyse_photos([photo.pk])
    photo.refresh_from_db()
    assert photo.status == Photo.Status.ANALYSED and photo.attempts == 1
    assert prediction.model_version == tiny_model and prediction.threshold == 0.5
    assert prediction.roi == (90, 60, 210, 180) and prediction.roi_source == RoiSource.PATIENT
    assert prediction.flagged == (prediction.probability >= 0.5)
    with prediction.heatmap.open("rb") as heatmap:
        assert Image.open(heatmap).size == (320, 240)
    assert {"model", "read", "render"} <= set(prediction.timings_ms)

    assert analysis.analyse_photos([photo.pk]) == []  # redelivered task: nothing new
    assert Prediction.objects.active().count() == 1


def test_a_run_that_fails_after_storing_its_heatmap_leaves_no_file(
    tiny_model, appointment, patient, private_storage, enqueued, monkeypatch
):
    """A failure after the heatmap file is written (here the case flag; in production a commit lost to
    a database restart) rolls the prediction back and removes its file: no file without a row."""
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")

    def database_gone(case):
        raise DatabaseError("server closed the connection unexpectedly")

    monkeypatch.setattr(analysis, "refresh_case_flag", database_gone)
    with pytest.raises(DatabaseError):
        analysis.analyse_photos([photo.pk])

    assert not Prediction.objects.exists()
    assert not list((private_storage / "heatmaps").rglob("*.jpg"))


def test_a_dark_photo_is_not_assessable_and_the_patient_is_asked_to_retake_it(
    tiny_model, appointment, patient, private_storage, enqueued
):
    dark = upload(Image.new("RGB", (320, 240), (5, 5, 5)), "dark.jpg")
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=dark, body_site="trunk")
    (prediction,) = analysis.analyse_photos([photo.pk])
    photo.refresh_from_db()
    assert (prediction.assessable, prediction.reason) == (False, "too_dark")
    assert prediction.outcome == PhotoOutcome.NOT_ASSESSABLE and not prediction.flagged
    assert (photo.status, photo.status_reason) == (Photo.Status.REJECTED, PhotoReason.TOO_DARK)
    assert "too dark" in photo.patient_message and photo.status_detail == ""
    assert analysis.analyse_photos([photo.pk]) == []  # settled: a redelivered task leaves it


def test_a_heavily_blurred_photo_is_not_assessable_and_never_flags_the_case(
    judging_model, appointment, patient, private_storage, enqueued, client
):
    blurred_image = lesion_image(seed=11).filter(ImageFilter.GaussianBlur(8))
    blurred = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=upload(blurred_image),
        body_site="trunk",
        roi=(0, 0, 320, 240),
    )
    (judged,) = analysis.analyse_photos([blurred.pk])
    assert judged.outcome == PhotoOutcome.NOT_ASSESSABLE and judged.reason == "blurred"
    assert judged.probability >= judged.threshold  # it has a score, but the score is not used
    case = Case.objects.get(pk=appointment.case.pk)
    assert not case.flagged and case.max_probability is None
    client.force_login(patient)
    status_url = reverse("appointment-photo-status", args=[appointment.reference])
    (blurred_status,) = client.get(status_url).json()["photos"]
    assert blurred_status["label"] == "Please take it again" and blurred_status["retake_needed"]
    assert blurred_status["detail"] == reason_for_patient("blurred") and "blurred" in blurred_status["detail"]

    # The patient takes it again (same body site): the blurred photo is replaced, no longer owed.
    sharp = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=upload(lesion_image(seed=10)),
        body_site="trunk",
        roi=(0, 0, 320, 240),
    )
    (suspected,) = analysis.analyse_photos([sharp.pk])
    assert suspected.outcome == PhotoOutcome.SUSPECTED
    case.refresh_from_db()
    assert case.flagged and case.max_probability == pytest.approx(suspected.probability)

    statuses = client.get(status_url).json()["photos"]
    blurred_status = next(p for p in statuses if p["id"] == blurred.pk)
    assert blurred_status["label"] == "Replaced by a newer photo" and not blurred_status["retake_needed"]
    assert "probability" not in str(statuses)


def make_prediction(photo, model_version, probability, assessable=True):
    prediction = Prediction(
        photo=photo,
        model_version=model_version,
        probability=probability,
        threshold=model_version.threshold,
        assessable=assessable,
        reason="" if assessable else "no_lesion",
        roi_source=RoiSource.NONE,
    )
    prediction.heatmap.save("h.jpg", ContentFile(b"x"), save=False)
    prediction.save()
    return prediction


def test_case_flag_follows_each_photos_latest_prediction(tiny_model, appointment, patient, private_storage, enqueued):
    first = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    second = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="hands")
    case = appointment.case

    make_prediction(first, tiny_model, 0.2)
    make_prediction(second, tiny_model, 0.7)
    analysis.refresh_case_flag(case)
    case = Case.objects.get(pk=case.pk)
    assert case.flagged and case.max_probability == pytest.approx(0.7)

    make_prediction(second, tiny_model, 0.4)  # a clinician's re-run with a better box
    analysis.refresh_case_flag(case)
    case = Case.objects.get(pk=case.pk)
    assert not case.flagged and case.max_probability == pytest.approx(0.4)

    make_prediction(second, tiny_model, 0.95, assessable=False)  # the model cannot judge the photo
    analysis.refresh_case_flag(case)
    case = Case.objects.get(pk=case.pk)
    assert not case.flagged and case.max_probability == pytest.approx(0.2)


CASE_RULE = {"combine": "mean", "a": 1.0, "b": 0.0, "threshold": 0.3, "target_sensitivity": 0.95, "prevalence": 0.1}


def test_case_rule_of_the_model_flags_the_case_not_the_top_photo(
    tiny_model, appointment, patient, private_storage, enqueued
):
    """Two photos at 0.6 and 0.1: the photo rule (threshold 0.5) flags on the first; the model's case
    rule (mean log-odds, threshold 0.3) scores the case sigmoid((logit 0.6 + logit 0.1) / 2) = 0.28."""
    first = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    second = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="hands")
    make_prediction(first, tiny_model, 0.6)
    make_prediction(second, tiny_model, 0.1)
    analysis.refresh_case_flag(appointment.case)
    case = Case.objects.get(pk=appointment.case.pk)
    assert case.flagged and case.probability == pytest.approx(0.6) and case.probability_prevalence is None

    ModelVersion.objects.filter(pk=tiny_model.pk).update(metadata={**tiny_model.metadata, "case_rule": CASE_RULE})
    analysis.refresh_case_flag(case)
    case = Case.objects.get(pk=case.pk)
    expected = 1 / (1 + np.exp(-(np.log(0.6 / 0.4) + np.log(0.1 / 0.9)) / 2))
    assert not case.flagged and case.probability == pytest.approx(expected)
    assert case.max_probability == pytest.approx(0.6) and case.probability_prevalence == pytest.approx(0.1)

    make_prediction(second, tiny_model, 0.5)  # both photos now look suspicious: the case is flagged
    analysis.refresh_case_flag(case)
    assert Case.objects.get(pk=case.pk).flagged


def test_case_page_and_staff_api_say_what_prevalence_the_probability_assumes(
    tiny_model, appointment, patient, clinician, client, settings, private_storage, enqueued
):
    ModelVersion.objects.filter(pk=tiny_model.pk).update(metadata={**tiny_model.metadata, "case_rule": CASE_RULE})
    tiny_model.refresh_from_db()
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    make_prediction(photo, tiny_model, 0.5)
    analysis.refresh_case_flag(appointment.case)
    client.force_login(clinician)

    settings.MPOX_PREVALENCE = None
    page = client.get(reverse("staff-case", args=[photo.case_id])).content.decode()
    assert "Case probability of mpox" in page and "<strong>50 %</strong>" in page
    assert "prevalence of 10 % (the model's training cases" in page
    body = client.get(reverse("api-staff-case", args=[photo.case_id])).json()
    assert body["probability"] == {"value": pytest.approx(0.5), "prevalence": 0.1, "source": "training"}

    settings.MPOX_PREVALENCE = 0.02  # the clinic sees mpox far less often than the training cases did
    shifted = 1 / (1 + (0.98 / 0.02) * (0.1 / 0.9))
    page = client.get(reverse("staff-case", args=[photo.case_id])).content.decode()
    assert f"<strong>{shifted * 100:.1f} %</strong>" in page and "prevalence of 2 % (this clinic" in page
    body = client.get(reverse("api-staff-case", args=[photo.case_id])).json()
    assert body["probability"] == {"value": pytest.approx(shifted), "prevalence": 0.02, "source": "clinic"}
    assert body["flagged"] is True  # the same case is flagged whatever prevalence it is shown at


@pytest.mark.parametrize(
    ("probability", "assessable", "outcome"),
    [
        (0.5, True, PhotoOutcome.SUSPECTED),
        (0.49, True, PhotoOutcome.NOT_SUSPECTED),
        (0.99, False, PhotoOutcome.NOT_ASSESSABLE),
    ],
)
def test_prediction_outcome_follows_score_threshold_and_assessability(
    tiny_model, appointment, patient, private_storage, enqueued, probability, assessable, outcome
):
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    prediction = make_prediction(photo, tiny_model, probability, assessable)
    assert prediction.outcome == outcome and prediction.flagged == (outcome == PhotoOutcome.SUSPECTED)
    assert bool(prediction.reason_for_clinician) == (not assessable)


def test_large_photo_keeps_full_size_roi_and_a_screen_size_overlay(
    tiny_model, appointment, patient, private_storage, enqueued
):
    photo = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=lesion_upload(size=(2560, 1920)),
        body_site="trunk",
        roi=(800, 600, 1600, 1400),
    )
    (prediction,) = analysis.analyse_photos([photo.pk])
    assert prediction.roi == (800, 600, 1600, 1400)  # full-photo pixels, as the patient drew it
    with prediction.heatmap.open("rb") as heatmap:
        assert Image.open(heatmap).size == (analysis.HEATMAP_MAX_SIDE, analysis.HEATMAP_MAX_SIDE * 3 // 4)


def test_the_differential_is_stored_and_staff_see_its_top_three_as_decision_support(
    tmp_path, settings, appointment, patient, clinician, client, private_storage, enqueued
):
    settings.MODEL_DIR = tmp_path
    classes = ("mpox", "chickenpox_or_measles", "genital_herpes", "genital_warts", "syphilis", "healthy_skin")
    ml.testing.make_random_checkpoint(
        tmp_path / "diff.pt",
        arch="efficientnet_lite0",
        input_size=64,
        threshold=0.5,
        version="diff-1",
        differential_classes=classes,
    )
    versions.register_checkpoints()
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    (prediction,) = analysis.analyse_photos([photo.pk])
    prediction.refresh_from_db()
    assert prediction.assessable  # no assessability rule in this checkpoint: only luminance limits
    assert set(prediction.differential) == set(classes)
    assert sum(prediction.differential.values()) == pytest.approx(1.0, abs=1e-3)
    assert prediction.differential["mpox"] == pytest.approx(prediction.probability, abs=1e-4)
    top = prediction.top_differential()
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]

    client.force_login(clinician)
    page = client.get(reverse("staff-case", args=[photo.case_id])).content.decode()
    assert "Decision support" in page and all(str(name) in page for name, _ in top)
    Prediction.objects.filter(pk=prediction.pk).update(assessable=False)
    page = client.get(reverse("staff-case", args=[photo.case_id])).content.decode()
    assert "Decision support" not in page  # a photo the model cannot judge shows no differential
    body = client.get(reverse("api-staff-case", args=[photo.case_id])).json()
    assert body["photos"][0]["predictions"][0]["differential"] == pytest.approx(prediction.differential)

    client.force_login(patient)
    patient_page = client.get(reverse("appointment", args=[appointment.reference])).content.decode()
    assert "Decision support" not in patient_page and "Genital herpes" not in patient_page
