"""The worker's pipeline in-process: registry, quality check, idempotent analysis, flagging rule."""
import io

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, ImageDraw

import ml.testing
from triage import analysis, images, registry
from triage.models import Case, ModelVersion, Photo, Prediction, RoiSource
from triage.services import accept_photo


@pytest.fixture
def tiny_model(tmp_path, settings, db):
    """A random 64-px DenseNet-121 checkpoint, registered and active; threshold 0.5."""
    settings.MODEL_DIR = tmp_path
    ml.testing.make_random_checkpoint(tmp_path / "tiny.pt", input_size=64, threshold=0.5, version="tiny-1")
    (model_version,) = registry.register_checkpoints()
    return model_version


def lesion_upload(size=(320, 240)):
    width, height = size
    image = Image.new("RGB", size, (214, 170, 140))
    ImageDraw.Draw(image).ellipse((width * 0.3, height * 0.3, width * 0.6, height * 0.7), fill=(140, 60, 60))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return SimpleUploadedFile("lesion.jpg", buffer.getvalue(), "image/jpeg")


def test_first_registered_checkpoint_becomes_active_and_registering_again_is_a_no_op(tiny_model):
    assert tiny_model.is_active and tiny_model.architecture == "densenet121"
    assert ModelVersion.objects.get().threshold == 0.5
    assert registry.register_checkpoints() == []


def test_without_a_model_photos_wait_and_get_no_score(appointment, patient, private_storage, enqueued):
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk")
    assert analysis.analyse_photos([photo.pk]) == []
    photo.refresh_from_db()
    assert photo.status == Photo.Status.NO_MODEL
    assert not Prediction.objects.exists()


def test_analysis_stores_a_prediction_once_and_a_rerun_skips_it(tiny_model, appointment, patient, private_storage, enqueued):
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(), body_site="trunk", roi=(90, 60, 210, 180))
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
    assert Prediction.objects.count() == 1


def test_unreadable_photos_are_rejected_with_a_reason(tiny_model, appointment, patient, private_storage, enqueued):
    buffer = io.BytesIO()
    Image.new("RGB", (320, 240), (5, 5, 5)).save(buffer, "JPEG")
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=SimpleUploadedFile("dark.jpg", buffer.getvalue(), "image/jpeg"), body_site="trunk")
    assert analysis.analyse_photos([photo.pk]) == []
    photo.refresh_from_db()
    assert photo.status == Photo.Status.REJECTED
    assert "too dark" in photo.status_detail


@pytest.mark.parametrize(
    ("colour", "problem"),
    [((3, 3, 3), "too dark"), ((252, 252, 252), "too bright"), ((120, 120, 120), "blank"), (None, None)],
)
def test_photo_quality_problem(colour, problem):
    if colour is None:
        image = Image.new("RGB", (300, 300), (200, 150, 130))
        ImageDraw.Draw(image).ellipse((100, 100, 200, 200), fill=(90, 40, 40))
    else:
        image = Image.new("RGB", (300, 300), colour)
    found = images.photo_quality_problem(image)
    assert (found is None) if problem is None else (problem in found)


def make_prediction(photo, model_version, probability):
    prediction = Prediction(
        photo=photo, model_version=model_version, probability=probability, threshold=model_version.threshold,
        flagged=probability >= model_version.threshold, roi_source=RoiSource.NONE,
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


def test_large_photo_keeps_full_size_roi_and_a_screen_size_overlay(tiny_model, appointment, patient, private_storage, enqueued):
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=lesion_upload(size=(2560, 1920)), body_site="trunk", roi=(800, 600, 1600, 1400))
    (prediction,) = analysis.analyse_photos([photo.pk])
    assert prediction.roi == (800, 600, 1600, 1400)  # full-photo pixels, as the patient drew it
    with prediction.heatmap.open("rb") as heatmap:
        assert Image.open(heatmap).size == (analysis.HEATMAP_MAX_SIDE, analysis.HEATMAP_MAX_SIDE * 3 // 4)
