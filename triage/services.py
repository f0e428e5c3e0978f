"""Writes for the triage domain: cases, photos, decisions, model versions, audit trail."""
import uuid

from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction

from triage import tasks
from triage.images import normalise_photo, validate_roi
from triage.models import AuditEvent, Case, Decision, Photo, RoiSource


def create_case(*, appointment) -> Case:
    return Case.objects.create(appointment=appointment)


def close_case(*, case) -> Case:
    """The appointment was cancelled: the case leaves the clinicians' queue."""
    case.is_open = False
    case.save(update_fields=["is_open", "updated_at"])
    return case


def accept_photo(*, case, uploaded_by, uploaded_file, body_site, roi=None) -> Photo:
    """Store one photo (see accept_photos)."""
    return accept_photos(case=case, uploaded_by=uploaded_by, uploaded_files=[uploaded_file], body_site=body_site, roi=roi)[0]


def accept_photos(*, case, uploaded_by, uploaded_files, body_site, roi=None) -> list[Photo]:
    """Validate every file, then store all of them or none, and queue them for analysis.

    `roi` (x0, y0, x1, y1 in upright-photo pixels) is only accepted with a single file;
    photos without a box are analysed with an automatic one by the worker.
    """
    if not uploaded_files:
        raise ValidationError("Please choose at least one photo.", code="no_files")
    if roi is not None and len(uploaded_files) != 1:
        raise ValidationError("A box around the lesion can only be drawn when uploading one photo.", code="roi")
    if body_site not in Photo.BodySite.values:
        raise ValidationError("Please choose where on the body the photo was taken.", code="body_site")

    normalised, errors = [], []
    for uploaded_file in uploaded_files:
        try:
            normalised.append(normalise_photo(uploaded_file))
        except ValidationError as error:
            errors.append(ValidationError(f"{uploaded_file.name}: {error.messages[0]}", code=error.code))
    if errors:
        raise ValidationError(errors)
    box = validate_roi(roi, normalised[0].width, normalised[0].height)

    stored_names = []
    try:
        with transaction.atomic():
            photos = []
            for image in normalised:
                photo = Photo(
                    case=case,
                    uploaded_by=uploaded_by,
                    body_site=body_site,
                    width=image.width,
                    height=image.height,
                    sha256=image.sha256,
                )
                if box:
                    _set_roi(photo, box, RoiSource.PATIENT)
                photo.image.save(f"{uuid.uuid4().hex}.jpg", ContentFile(image.content), save=False)
                stored_names.append(photo.image.name)
                photo.save()
                photos.append(photo)
            tasks.enqueue_analysis(photos)  # sends once the transaction commits
    except Exception:
        for name in stored_names:
            Photo.image.field.storage.delete(name)
        raise
    return photos


@transaction.atomic
def request_reanalysis(*, photo, clinician, roi=None) -> Photo:
    """Queue a new analysis; a new box replaces the old one. Earlier predictions are kept."""
    box = validate_roi(roi, photo.width, photo.height)
    if box:
        _set_roi(photo, box, RoiSource.CLINICIAN)
    photo.status = Photo.Status.RECEIVED
    photo.status_detail = ""
    photo.save()
    audit(actor=clinician, action="request_reanalysis", obj=photo, roi=photo.roi, roi_source=photo.roi_source)
    tasks.enqueue_analysis([photo], requested_by=clinician)  # sends once the transaction commits
    return photo


@transaction.atomic
def record_decision(*, case, clinician, outcome, action, note="") -> Decision:
    decision = Decision.objects.create(case=case, clinician=clinician, outcome=outcome, action=action, note=note)
    case.outcome = outcome
    case.save(update_fields=["outcome", "updated_at"])
    audit(actor=clinician, action="record_decision", obj=case, outcome=outcome, decision_action=action)
    return decision


def audit(*, actor, action, obj, allowed=True, request=None, **detail) -> AuditEvent:
    """Record who did or tried to do what. `obj` may be None when the object does not exist."""
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        allowed=allowed,
        detail=detail,
        ip_address=request.META.get("REMOTE_ADDR") if request is not None else None,
    )


def _set_roi(photo, box, source):
    photo.roi = box
    photo.roi_source = source
