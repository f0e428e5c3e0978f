"""Worker side of triage: the model registry and the photo → prediction pipeline.

Imports `ml` (and so torch) lazily: the web process never needs it, a worker loads the
active model once per process (see `triage.tasks`).
"""
import io
import logging
import math
import time
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from PIL import Image

from .models import Case, ModelVersion, Photo, Prediction, RoiSource

logger = logging.getLogger(__name__)

# Photos so dark, bright or flat that no model can read them are sent back to the patient.
MIN_MEAN_LUMINANCE = 20
MAX_MEAN_LUMINANCE = 245
MIN_LUMINANCE_STD = 4.0
MAX_MODELS_IN_MEMORY = 2
# The model crops from the full photo; the stored heatmap overlay is capped at this longer side
# (on a 12 MP phone photo a full-size overlay cost ~10x the model and shows nothing more on screen).
HEATMAP_MAX_SIDE = 1280

_models_by_version = {}


class NoActiveModel(Exception):
    pass


def register_checkpoints(directory=None):
    """Register every checkpoint in `directory` (default settings.MODEL_DIR) as a model version.

    Returns the versions newly registered. If no version is active yet, the newest
    registered one becomes active, so a fresh install serves its shipped model.
    """
    import ml

    directory = Path(directory or settings.MODEL_DIR)
    registered = []
    for path in sorted(directory.glob("*.pt")):
        metadata = ml.load(path).metadata
        model_version, created = ModelVersion.objects.get_or_create(
            version=metadata["version"],
            defaults={
                "architecture": metadata["arch"],
                "checkpoint_path": str(path.resolve()),
                "threshold": metadata["threshold"],
                "operating_point": str(metadata.get("operating_point", ""))[:200],
                "metadata": metadata,
            },
        )
        if created:
            registered.append(model_version)
    if registered and not ModelVersion.objects.filter(is_active=True).exists():
        from .services import activate_model_version

        activate_model_version(registered[-1])
    return registered


def active_model_version():
    return ModelVersion.objects.filter(is_active=True).first()


def loaded_model(model_version):
    """The `ml.LesionModel` for a version, loaded once per process and kept for later tasks."""
    import ml

    model = _models_by_version.get(model_version.version)
    if model is None:
        while len(_models_by_version) >= MAX_MODELS_IN_MEMORY:
            _models_by_version.pop(next(iter(_models_by_version)))
        model = ml.load(model_version.checkpoint_path)
        _models_by_version[model_version.version] = model
    return model


def preload_active_model():
    model_version = active_model_version()
    if model_version is not None:
        loaded_model(model_version)
    return model_version


def photo_quality_problem(image):
    """A reason a patient can act on when the photo cannot be analysed, or None."""
    grey = np.asarray(image.convert("L").reduce(4) if min(image.size) >= 256 else image.convert("L"), dtype=np.float32)
    mean, std = float(grey.mean()), float(grey.std())
    if mean < MIN_MEAN_LUMINANCE:
        return "The photo is too dark to analyse. Please take it again in good light."
    if mean > MAX_MEAN_LUMINANCE:
        return "The photo is too bright (overexposed) to analyse. Please take it again without flash glare."
    if std < MIN_LUMINANCE_STD:
        return "The photo looks blank. Please take it again with the skin area in view."
    return None


def analyse_photos(photo_ids, requested_by_id=None):
    """Analyse photos (one batch per call), skipping any already analysed.

    Safe to re-run: a redelivered task finds finished photos ANALYSED and leaves them.
    Returns the predictions made.
    """
    photos = _claim_photos(photo_ids)
    if not photos:
        return []
    model_version = active_model_version()
    if model_version is None:
        Photo.objects.filter(pk__in=[p.pk for p in photos]).update(
            status=Photo.Status.NO_MODEL, status_detail="No model is installed yet; the photo will be analysed once one is."
        )
        return []

    started = time.perf_counter()
    model = loaded_model(model_version)
    load_ms = (time.perf_counter() - started) * 1000

    readable, images = [], []
    for photo in photos:
        read_started = time.perf_counter()
        with photo.image.open("rb") as handle:
            image = Image.open(handle)
            image.load()
        image = image.convert("RGB")
        screen = screen_copy(image)
        problem = photo_quality_problem(screen)
        if problem:
            _set_status(photo, Photo.Status.REJECTED, problem)
            continue
        readable.append((photo, screen, (time.perf_counter() - read_started) * 1000))
        images.append(image)
    if not readable:
        return []

    analyses = model.analyse_batch(images, [photo.roi for photo, _, _ in readable], heatmap_max_side=HEATMAP_MAX_SIDE)
    predictions = []
    for (photo, screen, read_ms), image, analysis in zip(readable, images, analyses):
        render_started = time.perf_counter()
        overlay = _encode_jpeg(ml_overlay(screen, analysis, image.width))
        timings = dict(analysis.timings_ms)
        timings.update(read=read_ms, render=(time.perf_counter() - render_started) * 1000, model_load=load_ms)
        predictions.append(
            record_prediction(photo, model_version, analysis, overlay, timings, requested_by_id=requested_by_id)
        )
    return predictions


def screen_copy(image):
    """The photo shrunk by a whole factor to about HEATMAP_MAX_SIDE (fast box filter), for the
    quality check and the overlay; the model still gets the full photo."""
    factor = math.ceil(max(image.size) / HEATMAP_MAX_SIDE)
    return image.reduce(factor) if factor > 1 else image


def ml_overlay(screen, analysis, full_width):
    """The heatmap blended over the screen copy of the photo, with the ROI (full-photo pixels) drawn."""
    import ml

    height, width = analysis.heatmap.shape
    if screen.size != (width, height):
        screen = screen.resize((width, height), Image.Resampling.BILINEAR)
    scale = width / full_width
    roi = None if analysis.roi is None else tuple(round(value * scale) for value in analysis.roi)
    return ml.heatmap_overlay(screen, analysis.heatmap, roi=roi)


def record_prediction(photo, model_version, analysis, heatmap_jpeg, timings_ms, requested_by_id=None):
    """Store one prediction, mark the photo analysed and refresh its case's flag, atomically."""
    roi_source = {"given": photo.roi_source, "auto": RoiSource.AUTO}.get(analysis.roi_source, RoiSource.NONE)
    with transaction.atomic():
        prediction = Prediction(
            photo=photo,
            model_version=model_version,
            probability=float(analysis.probability),
            threshold=model_version.threshold,
            flagged=float(analysis.probability) >= model_version.threshold,
            roi=analysis.roi,
            roi_source=roi_source,
            timings_ms={key: round(float(value), 2) for key, value in timings_ms.items()},
            requested_by_id=requested_by_id,
        )
        prediction.heatmap.save(f"{photo.pk}-{model_version.pk}-{time.time_ns()}.jpg", ContentFile(heatmap_jpeg), save=False)
        try:
            prediction.save()
        except Exception:
            prediction.heatmap.storage.delete(prediction.heatmap.name)
            raise
        _set_status(photo, Photo.Status.ANALYSED, "")
        refresh_case_flag(photo.case)
    return prediction


def refresh_case_flag(case):
    """A case is flagged when any photo's latest prediction reaches that prediction's threshold."""
    latest = [
        photo.predictions.order_by("-created_at", "-id").first()
        for photo in case.photos.all()
    ]
    latest = [prediction for prediction in latest if prediction is not None]
    Case.objects.filter(pk=case.pk).update(
        flagged=any(prediction.flagged for prediction in latest),
        max_probability=max((prediction.probability for prediction in latest), default=None),
    )


def mark_failed(photo_ids, reason):
    Photo.objects.filter(pk__in=photo_ids).exclude(status=Photo.Status.ANALYSED).update(
        status=Photo.Status.FAILED, status_detail=reason[:300]
    )


def photos_waiting_for_a_model():
    return list(Photo.objects.filter(status=Photo.Status.NO_MODEL).values_list("pk", flat=True))


def _claim_photos(photo_ids):
    """Lock the photos still to analyse, mark them ANALYSING and count the attempt."""
    with transaction.atomic():
        photos = list(
            Photo.objects.select_for_update()
            .select_related("case")
            .filter(pk__in=photo_ids)
            .exclude(status__in=[Photo.Status.ANALYSED, Photo.Status.REJECTED])
            .order_by("pk")
        )
        for photo in photos:
            photo.status = Photo.Status.ANALYSING
            photo.status_detail = ""
            photo.attempts += 1
            photo.save(update_fields=["status", "status_detail", "attempts", "updated_at"])
    return photos


def _set_status(photo, status, detail):
    photo.status = status
    photo.status_detail = detail
    photo.save(update_fields=["status", "status_detail", "updated_at"])


def _encode_jpeg(image):
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()
