"""Worker side of triage: photo → prediction.

Imports `ml` (and so torch) lazily: the web process never needs it; a worker keeps the active
model loaded once per process (`registry.versions`, preloaded by `triage.tasks`).
"""

import hashlib
import io
import logging
import time
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from PIL import Image

from ml.case_rule import case_score, training_prevalence
from registry import versions
from triage import events, history, images
from triage.models import Case, Photo, PhotoReason, Prediction, RoiSource
from triage.models.photos import photo_upload_path
from triage.photo_status import change_status, settle_problem_photos

logger = logging.getLogger(__name__)

# The model crops from the full photo; the heatmap and its stored overlay are capped at this longer
# side (on a 12 MP phone photo a full-size overlay cost ~10x the model and shows nothing more on screen).
HEATMAP_MAX_SIDE = 1280
HEATMAP_JPEG_QUALITY = 88


def analyse_photos(photo_ids, requested_by_id=None, worker=""):
    """Analyse photos (one batch per call), skipping any already analysed. Each photo is decoded
    once per run (`read_photo`, which on its first run also makes its normalised JPEG).

    The model judges each photo assessable or not (quality, lesion in view) in the same pass that
    scores it; a photo it cannot judge gets a prediction too, and the patient is asked to retake it.
    Safe to re-run: a redelivered task finds finished photos (`Photo.FINISHED_STATUSES`) and leaves them, and
    of two runs of one photo only the one that began last records a result (see `record_prediction`).
    `worker` names the Celery worker, so that it can recover its photos if it dies.
    Returns the predictions made.
    """
    strip_unclaimed_originals(photo_ids)
    photos = _claim_photos(photo_ids, worker)
    readable = []
    for photo in photos:
        read_started = time.perf_counter()
        image = read_photo(photo)
        if image is not None:  # None: refused as damaged, and the patient told so
            readable.append((photo, image, (time.perf_counter() - read_started) * 1000))
    if not readable:
        return []
    model_version = versions.active_model_version()
    if model_version is None:
        change_status(Photo.objects.filter(pk__in=[p.pk for p, _, _ in readable]), Photo.Status.NO_MODEL)
        return []

    started = time.perf_counter()
    model = versions.loaded_model(model_version)
    load_ms = (time.perf_counter() - started) * 1000

    images = [image for _, image, _ in readable]
    analyses = model.analyse_batch(images, [photo.roi for photo, _, _ in readable], heatmap_max_side=HEATMAP_MAX_SIDE)
    predictions, recorded_images = [], []
    for (photo, image, read_ms), analysis in zip(readable, analyses):
        render_started = time.perf_counter()
        heatmap_jpeg = render_heatmap(image, analysis)
        timings = dict(analysis.timings_ms)
        timings.update(read=read_ms, render=(time.perf_counter() - render_started) * 1000, model_load=load_ms)
        prediction = record_prediction(
            photo=photo,
            model_version=model_version,
            analysis=analysis,
            heatmap_jpeg=heatmap_jpeg,
            timings_ms=timings,
            requested_by_id=requested_by_id,
        )
        if prediction is not None:  # None: a later run of this photo records instead
            predictions.append(prediction)
            recorded_images.append(image)
    run_challenger_in_shadow(predictions, recorded_images, requested_by_id=requested_by_id)
    return predictions


def _shadow_roi_source(active_prediction, analysis):
    if analysis.roi_source == "given":
        return active_prediction.roi_source
    return RoiSource.AUTO if analysis.roi_source == "auto" else RoiSource.NONE


# Shadow heatmaps are never shown, so the challenger's Grad-CAM is kept tiny and not stored.
SHADOW_HEATMAP_MAX_SIDE = 32


def run_challenger_in_shadow(active_predictions, images, requested_by_id=None):
    """Score the same decoded photos with the challenger, if one is registered, after the active
    model's results are stored (so patients and clinicians never wait for it).

    The challenger sees the box the active model used, so the two are compared on the same crop.
    Its predictions (role challenger) never flag a case and are hidden from staff and patient
    pages (`Prediction.objects.active()`). A failing challenger is logged and never fails the analysis.
    """
    challenger = versions.challenger_model_version()
    if challenger is None:
        return []
    try:
        started = time.perf_counter()
        model = versions.loaded_model(challenger)
        load_ms = (time.perf_counter() - started) * 1000
        analyses = model.analyse_batch(
            images, [prediction.roi for prediction in active_predictions], heatmap_max_side=SHADOW_HEATMAP_MAX_SIDE
        )
        with transaction.atomic():
            return [
                Prediction.objects.create(
                    photo=active.photo,
                    model_version=challenger,
                    role=Prediction.Role.CHALLENGER,
                    probability=float(analysis.probability),
                    threshold=challenger.threshold,
                    assessable=bool(analysis.assessable),
                    reason=analysis.reason,
                    roi=analysis.roi,
                    roi_source=_shadow_roi_source(active, analysis),
                    roi_scored=analysis.roi_scored,
                    timings_ms={
                        **{key: round(float(value), 2) for key, value in analysis.timings_ms.items()},
                        "model_load": round(load_ms, 2),
                    },
                    requested_by_id=requested_by_id,
                )
                for active, analysis in zip(active_predictions, analyses)
            ]
    except Exception:
        logger.exception(
            "Challenger %s failed on photos %s; the active model's results stand",
            challenger.version,
            [prediction.photo_id for prediction in active_predictions],
        )
        return []


def read_photo(photo) -> Image.Image | None:
    """The photo's upright RGB pixels, decoded once.

    On a photo's first run this is where its upload is made safe to show: the original (as sent,
    metadata and all) is decoded, oriented and stripped into the normalised JPEG, which is stored
    and recorded before the original is deleted. Each step is safe to run again, so a run killed
    half-way is finished by the next: the JPEG gets the same name, and an original still recorded
    once the JPEG is recorded is deleted again. A file that cannot be decoded is refused as damaged
    (`refuse_unreadable`) and None is returned.
    """
    image = None
    if not photo.image.name:
        try:
            image = _normalise(photo)
        except ValidationError as refusal:
            cause = refusal.__context__
            refuse_unreadable(photo, detail=f"{type(cause).__name__}: {cause}" if cause else refusal.messages[0])
            return None
    if image is None:  # made by an earlier run
        with photo.image.open("rb") as handle:
            image = Image.open(handle)
            image.load()
        image = image.convert("RGB")
    if photo.original.name:
        _delete_original(photo)
    return image


def strip_unclaimed_originals(photo_ids):
    """Photos of a batch that will not be analysed (their appointment was cancelled after the
    upload) still get their metadata stripped: no original outlives its task."""
    for photo in Photo.objects.filter(pk__in=photo_ids, case__is_open=False, files_deleted_at__isnull=True).exclude(
        original=""
    ):
        read_photo(photo)


def _normalise(photo):
    """Make and record the normalised JPEG from the original; returns its pixels, or None when
    another run made it first. The photo's row stays locked meanwhile, so two runs never both write it."""
    storage = Photo.image.field.storage
    stored = None
    try:
        with transaction.atomic():
            made = Photo.objects.select_for_update().values_list("image", flat=True).get(pk=photo.pk)
            if made:
                photo.image = made
                return None
            with photo.original.open("rb") as handle:
                sent = handle.read()  # read whole first: a storage error is a fault to retry, not a damaged file
            image = images.decode_upright(io.BytesIO(sent))
            content = images.encode_jpeg(image)
            name = photo_upload_path(photo, f"{Path(photo.original.name).stem}.jpg")
            storage.delete(name)  # left by a run killed before its commit
            stored = storage.save(name, ContentFile(content))
            photo.image, photo.sha256 = stored, hashlib.sha256(content).hexdigest()
            Photo.objects.filter(pk=photo.pk).update(image=stored, sha256=photo.sha256, updated_at=timezone.now())
    except Exception:
        if stored and not Photo.objects.filter(pk=photo.pk, image=stored).exists():
            storage.delete(stored)
        raise
    return image


def _delete_original(photo):
    """File first, then the row: a run killed in between deletes it again (a missing file is a no-op)."""
    Photo.original.field.storage.delete(photo.original.name)
    Photo.objects.filter(pk=photo.pk).update(original="", updated_at=timezone.now())
    photo.original = ""


def refuse_unreadable(photo, *, detail=""):
    """The upload's pixels cannot be decoded: nothing of it is kept, and the patient is asked to send
    it again (always: unlike a photo the model cannot judge, a new file is no judgement to loop on)."""
    with transaction.atomic():
        change_status(photo, Photo.Status.REJECTED, reason=PhotoReason.UNREADABLE, detail=detail)
        if photo.case.is_open:
            events.send_on_commit(events.photo_retake_needed, case=photo.case, photo=photo)
    _delete_original(photo)
    logger.info("Photo %s could not be decoded (%s); the patient is asked to send it again", photo.pk, detail)


def render_heatmap(image, analysis) -> bytes:
    """The stored heatmap: the overlay at display size (`ml.overlay` owns the sizing), as JPEG."""
    import ml

    return images.encode_jpeg(ml.overlay(image, analysis), quality=HEATMAP_JPEG_QUALITY)


def record_prediction(*, photo, model_version, analysis, heatmap_jpeg, timings_ms, requested_by_id=None):
    """Store one prediction, settle the photo and refresh its case's flag, atomically. A photo the
    model cannot judge is marked for a retake, with the model's reason.

    Returns None, storing nothing, when another run of this photo began after this one (a
    redelivered or re-queued task; `photo.attempts` is this run's number): that run records instead,
    so each analysis ends in exactly one prediction however often its task was delivered.
    """
    roi_source = {"given": photo.roi_source, "auto": RoiSource.AUTO}.get(analysis.roi_source, RoiSource.NONE)
    stored_heatmap = None
    try:
        with transaction.atomic():
            if not Photo.objects.select_for_update().filter(pk=photo.pk, attempts=photo.attempts).exists():
                logger.info("Photo %s: a later analysis run began; this run's result is dropped", photo.pk)
                return None
            prediction = Prediction(
                photo=photo,
                model_version=model_version,
                probability=float(analysis.probability),
                threshold=model_version.threshold,
                assessable=bool(analysis.assessable),
                reason=analysis.reason,
                roi=analysis.roi,
                roi_source=roi_source,
                roi_scored=analysis.roi_scored,
                timings_ms={key: round(float(value), 2) for key, value in timings_ms.items()},
                differential={name: round(float(p), 4) for name, p in analysis.differential.items()},
                requested_by_id=requested_by_id,
            )
            prediction.heatmap.save(
                f"{photo.pk}-{model_version.pk}-{time.time_ns()}.jpg", ContentFile(heatmap_jpeg), save=False
            )
            stored_heatmap = prediction.heatmap.name
            prediction.save()
            if prediction.assessable:
                change_status(photo, Photo.Status.ANALYSED)
            elif photo.case.photos.filter(status=Photo.Status.REPLACED).exists():
                # The patient already took a photo again: asking once more would loop. The case goes to
                # the clinician with the photos as they are, and the patient is told so.
                change_status(photo, Photo.Status.AS_IS, reason=PhotoReason.from_model(prediction.reason))
                settle_problem_photos(photo.case.photos.all(), status=Photo.Status.AS_IS)
            else:
                change_status(photo, Photo.Status.REJECTED, reason=PhotoReason.from_model(prediction.reason))
                events.send_on_commit(events.photo_retake_needed, case=photo.case, photo=photo)
            refresh_case_flag(photo.case)
    except Exception:
        # Nothing of this run was committed (a failed write, or a commit lost to a database restart):
        # its heatmap file must not outlive it.
        if stored_heatmap:
            Prediction._meta.get_field("heatmap").storage.delete(stored_heatmap)
        raise
    return prediction


@transaction.atomic
def refresh_case_flag(case):
    """Flag a case by its assessable photos' latest predictions (a photo the model cannot judge
    neither flags the case nor sets its scores): the model's case rule combines them into one case
    probability and flag (`ml.case_rule`); a model without one flags when any photo is suspected
    mpox, as do photos scored by different models.

    While a history + image model is active (promoted), and the photos were scored by the image
    model it builds on, its combined probability on that case probability and the answers flags the
    case instead (it was fitted on the same case scores, `modelops.performance.case_scores`), and the
    case records which version and score did.
    Announces `case_flagged` (after commit) when the flag goes from off to on.
    """
    was_flagged = Case.objects.select_for_update().values_list("flagged", flat=True).get(pk=case.pk)
    latest = [
        photo.predictions.active().select_related("model_version").order_by("-created_at", "-id").first()
        for photo in case.photos.all()
    ]
    assessed = [prediction for prediction in latest if prediction is not None and prediction.assessable]
    top_score = max((prediction.probability for prediction in assessed), default=None)
    flagged, probability, prevalence = any(prediction.flagged for prediction in assessed), top_score, None
    if len({prediction.model_version_id for prediction in assessed}) == 1:
        model_version = assessed[0].model_version
        score = case_score([p.probability for p in assessed], model_version.metadata, model_version.threshold)
        flagged, probability = score.flagged, score.probability
        prevalence = training_prevalence(model_version.metadata)
    history_model, history_score = versions.active_history_model(), None
    if (
        history_model is None
        or not assessed
        or any(p.model_version_id != history_model.image_model_id for p in assessed)
    ):
        history_model = None
    else:
        history_score = history.history_probability(history_model, case, probability)
        flagged = history_score >= history_model.threshold
    Case.objects.filter(pk=case.pk).update(
        flagged=flagged,
        max_probability=top_score,
        probability=probability,
        probability_prevalence=prevalence,
        history_model=history_model,
        history_score=history_score,
    )
    if flagged and not was_flagged:
        events.send_on_commit(events.case_flagged, case=case)


def mark_failed(photo_ids, reason, detail=""):
    """The batch's photos not yet finished end FAILED (a photo already analysed or rejected in an
    earlier run of the batch keeps its result and reason). `reason`: PhotoReason.TIMED_OUT or
    FAILED; `detail`: the technical cause, for staff only."""
    unfinished = Photo.objects.filter(pk__in=photo_ids).exclude(status__in=Photo.FINISHED_STATUSES)
    change_status(unfinished, Photo.Status.FAILED, reason=reason, detail=detail)


def _claim_photos(photo_ids, worker):
    """Lock the photos still to analyse, mark them ANALYSING (the lease starts now) and count the attempt."""
    with transaction.atomic():
        photos = list(
            Photo.objects.select_for_update()
            .select_related("case")
            .filter(pk__in=photo_ids, files_deleted_at__isnull=True, case__is_open=True)  # cancelled: never analysed
            .exclude(status__in=Photo.FINISHED_STATUSES)
            .order_by("pk")
        )
        for photo in photos:
            change_status(
                photo,
                Photo.Status.ANALYSING,
                attempts=photo.attempts + 1,
                analysis_started_at=timezone.now(),
                analysis_worker=worker,
            )
    return photos
