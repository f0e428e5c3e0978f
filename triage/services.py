"""Writes for the triage domain: cases, photos, decisions, ground truth, training exports, retention."""

import csv
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac
from django.utils.translation import gettext

from core.services import audit
from ml.diagnoses import training_folder
from triage import events, tasks
from triage.images import box_for_tap, read_header, validate_roi
from triage.models import (
    Case,
    Decision,
    FinalDiagnosis,
    LabResult,
    Outcome,
    Photo,
    RoiSource,
    SiteMembership,
    is_mpox,
)
from triage.photo_status import change_status, settle_problem_photos
from triage.selectors import exportable_photos


def create_case(*, appointment) -> Case:
    return Case.objects.create(appointment=appointment)


def close_case(*, case) -> Case:
    """The appointment was cancelled: the case leaves the clinicians' queue."""
    case.is_open = False
    case.save(update_fields=["is_open", "updated_at"])
    return case


def record_site_change(*, case, previous_site, actor, request=None) -> None:
    """The case's appointment moved to another site (booking has moved it): audited, the claim of
    the old site's clinician ends, and, when the case was already decided, the on-duty staff of the
    new site are emailed so the decision (made for the other site) is checked, never moved silently."""
    decision = case.decisions.order_by("-created_at", "-id").first()
    Case.objects.filter(pk=case.pk).update(claimed_by=None, claimed_until=None)
    audit(
        actor=actor,
        action="change_site",
        obj=case,
        request=request,
        from_site=previous_site.name,
        to_site=case.clinic.name,
        after_decision=decision is not None,
    )
    if decision is not None:
        tasks.email_site_change_on_commit(case_id=case.pk, previous_site=previous_site.name, decision_id=decision.pk)


def add_site_membership(*, user, clinic, on_duty=False) -> SiteMembership:
    """`user` works at `clinic` (sees its cases; on duty: gets its flagged-case emails). Idempotent."""
    membership, _ = SiteMembership.objects.update_or_create(user=user, clinic=clinic, defaults={"on_duty": on_duty})
    return membership


def accept_photo(*, case, uploaded_by, uploaded_file, body_site, roi=None, tap=None) -> Photo:
    """Store one photo through `accept_photos` (for scripts, the demo history and tests)."""
    return accept_photos(
        case=case,
        uploaded_by=uploaded_by,
        uploaded_files=[uploaded_file],
        body_site=body_site,
        roi=roi,
        tap=tap,
    )[0]


def accept_photos(*, case, uploaded_by, uploaded_files, body_site, roi=None, tap=None) -> list[Photo]:
    """The one way a photo enters: check every file from its header, then store all of them as sent
    or none, and queue them for the worker, which decodes, orients and strips each one
    (`analysis.read_photo`); no pixel is decoded here. Every upload entry point calls it: the
    patient's appointment page
    (portal.booking.views), the REST upload (triage.api.CasePhotosView, which the integration API
    serves) and FHIR Media.

    New photos of a body site replace that site's photos the patient was asked to take again.
    The patient may mark the lesion on a single photo: `roi` a drawn box (x0, y0, x1, y1) or `tap`
    a point (x, y) that becomes a box sized from the photo, both in upright-photo pixels. Photos
    without a mark are analysed with an automatic box by the worker.
    """
    if not case.is_open:  # checked again under the case's lock before anything is stored
        raise _case_closed_error()
    if not uploaded_files:
        raise ValidationError(gettext("Please choose at least one photo."), code="no_files")
    if len(uploaded_files) > settings.PHOTO_MAX_FILES_PER_UPLOAD:
        raise ValidationError(
            gettext("Please send at most %(limit)s photos at a time (you chose %(chosen)s).")
            % {"limit": settings.PHOTO_MAX_FILES_PER_UPLOAD, "chosen": len(uploaded_files)},
            code="too_many_files",
        )
    if roi is not None and tap is not None:
        raise ValidationError(gettext("Please either tap the lesion or draw a box, not both."), code="roi")
    if (roi is not None or tap is not None) and len(uploaded_files) != 1:
        raise ValidationError(gettext("The lesion can only be marked when uploading one photo."), code="roi")
    if body_site not in Photo.BodySite.values:
        raise ValidationError(gettext("Please choose where on the body the photo was taken."), code="body_site")

    headers, errors = [], []
    for uploaded_file in uploaded_files:
        try:
            headers.append(read_header(uploaded_file))
        except ValidationError as error:
            errors.append(ValidationError(f"{uploaded_file.name}: {error.messages[0]}", code=error.code))
    if errors:
        raise ValidationError(errors)
    size = (headers[0].width, headers[0].height)
    box, source = validate_roi(roi, *size), RoiSource.PATIENT
    if tap is not None:
        box, source = box_for_tap(tap, *size), RoiSource.PATIENT_TAP

    stored_names = []
    try:
        with transaction.atomic():
            _refuse_past_appointment_limit(case, len(headers))
            photos = []
            for uploaded_file, header in zip(uploaded_files, headers):
                photo = Photo(
                    case=case, uploaded_by=uploaded_by, body_site=body_site, width=header.width, height=header.height
                )
                if box:
                    _set_roi(photo, box, source)
                # Streamed to private storage as sent; the worker makes the normalised `image` from it.
                photo.original.save(f"{uuid.uuid4().hex}.{header.extension}", uploaded_file, save=False)
                stored_names.append(photo.original.name)
                photo.save()
                photos.append(photo)
            # New photos of a body site replace the ones of that site the patient was asked to take again.
            settle_problem_photos(
                case.photos.filter(body_site=body_site).exclude(pk__in=[p.pk for p in photos]),
                status=Photo.Status.REPLACED,
            )
            _queue_for_review(case)
            tasks.enqueue_analysis(photos)  # sends once the transaction commits
    except Exception:
        for name in stored_names:
            Photo.original.field.storage.delete(name)
        raise
    return photos


def _case_closed_error():
    return ValidationError(
        gettext("This appointment was cancelled, so photos can no longer be added."), code="case_closed"
    )


def _refuse_past_appointment_limit(case, adding):
    """At most PHOTO_MAX_PER_APPOINTMENT photos per case, and none once it is cancelled; the case row
    is locked so that uploads sent at the same time (or with a cancellation) cannot pass the checks together."""
    if not Case.objects.select_for_update().get(pk=case.pk).is_open:
        raise _case_closed_error()
    limit, stored = settings.PHOTO_MAX_PER_APPOINTMENT, case.photos.count()
    if stored + adding > limit:
        left = max(limit - stored, 0)
        raise ValidationError(
            gettext("An appointment can have up to %(limit)s photos and this one has %(stored)s.")
            % {"limit": limit, "stored": stored}
            + " "
            + (
                gettext("Please send at most %(left)s more.") % {"left": left}
                if left
                else gettext("Please call the clinic if you need to send more.")
            ),
            code="too_many_photos",
        )


@transaction.atomic
def request_reanalysis(*, photo, clinician, roi=None, tap=None) -> Photo:
    """Queue a new analysis; a new box (drawn, or from a tap) replaces the old one. Earlier
    predictions are kept."""
    if not photo.is_viewable:
        raise ValidationError(
            "This photo has no file to analyse: it was deleted, could not be decoded, or is still being prepared.",
            code="no_file",
        )
    if roi is not None and tap is not None:
        raise ValidationError(gettext("Please either tap the lesion or draw a box, not both."), code="roi")
    box = validate_roi(roi, photo.width, photo.height) or box_for_tap(tap, photo.width, photo.height)
    if box:
        _set_roi(photo, box, RoiSource.CLINICIAN)
        photo.save(update_fields=["roi_x0", "roi_y0", "roi_x1", "roi_y1", "roi_source", "updated_at"])
    change_status(photo, Photo.Status.RECEIVED)
    audit(actor=clinician, action="request_reanalysis", obj=photo, roi=photo.roi, roi_source=photo.roi_source)
    tasks.enqueue_analysis([photo], requested_by=clinician)  # sends once the transaction commits
    return photo


@transaction.atomic
def record_decision(*, case, clinician, outcome, action="", note="", patient_instructions="") -> Decision:
    """Record a clinician's decision; the patient is emailed what they are told once it commits.

    Only the pairs in Decision.ACTIONS_FOR_OUTCOME are accepted. A retake request needs the reason
    (`patient_instructions`, shown to the patient) and puts the case out of the queue until the
    patient uploads again. Refused while another clinician holds the case.
    """
    problems = Decision.problems(outcome=outcome, action=action, patient_instructions=patient_instructions)
    if problems:
        raise ValidationError(problems)
    case = Case.objects.select_for_update().get(pk=case.pk)
    if not case.is_open:
        raise ValidationError("The appointment was cancelled: there is nothing to decide.", code="closed")
    _check_not_claimed_by_another(case, clinician)
    decision = Decision.objects.create(
        case=case,
        clinician=clinician,
        outcome=outcome,
        action=action,
        note=note,
        patient_instructions=patient_instructions.strip(),
    )
    if outcome != Outcome.RETAKE:  # decided with the photos as they are: no retake is owed any more
        settle_problem_photos(case.photos.all(), status=Photo.Status.AS_IS)
    case.outcome = outcome
    case.claimed_by, case.claimed_until = None, None
    case.save(update_fields=["outcome", "claimed_by", "claimed_until", "updated_at"])
    audit(actor=clinician, action="record_decision", obj=case, outcome=outcome, decision_action=action)
    events.send_on_commit(events.case_decided, case=case, decision=decision)
    tasks.email_patient_decision_on_commit(decision)
    return decision


@transaction.atomic
def countersign_decision(*, decision, clinician) -> Decision:
    """A second clinician confirms a decision (once; never its author)."""
    decision = Decision.objects.select_for_update().get(pk=decision.pk)
    if decision.clinician_id == clinician.pk:
        raise ValidationError("A decision is countersigned by a second clinician, not its author.", code="own")
    if decision.countersigned_by_id is not None:
        raise ValidationError(f"Already countersigned by {decision.countersigned_by}.", code="countersigned")
    decision.countersigned_by = clinician
    decision.countersigned_at = timezone.now()
    decision.save(update_fields=["countersigned_by", "countersigned_at"])
    audit(actor=clinician, action="countersign_decision", obj=decision.case, decision_id=decision.pk)
    return decision


@transaction.atomic
def claim_case(*, case, clinician, take_over=False) -> Case:
    """Mark `clinician` as working on the case for CASE_CLAIM_MINUTES (renewed on each call).

    Another clinician's running claim is respected unless `take_over` (which is audited). Updates
    and returns the `case` passed in.
    """
    holder = Case.objects.select_for_update().get(pk=case.pk).claim_holder
    if holder is not None and holder.pk != clinician.pk:
        if not take_over:
            raise ValidationError(f"{holder} is working on this case.", code="claimed")
        audit(actor=clinician, action="take_over_case", obj=case, previous_holder=holder.pk)
    case.claimed_by = clinician
    case.claimed_until = timezone.now() + timedelta(minutes=settings.CASE_CLAIM_MINUTES)
    Case.objects.filter(pk=case.pk).update(claimed_by=case.claimed_by, claimed_until=case.claimed_until)
    return case


@transaction.atomic
def release_case(*, case, clinician) -> Case:
    """Give up one's own claim (another clinician's claim is left alone). Returns the case, refreshed."""
    Case.objects.filter(pk=case.pk, claimed_by=clinician).update(claimed_by=None, claimed_until=None)
    case.refresh_from_db(fields=["claimed_by", "claimed_until"])
    return case


CONTRADICTION_MESSAGE = (
    "The mpox PCR is negative but the final diagnosis is mpox: these contradict each other. Model performance "
    "counts the case as not mpox (by the PCR) and training exports leave it out. Check both; if they are right "
    "(e.g. a false-negative swab), confirm the contradiction and save again."
)


@transaction.atomic
def record_ground_truth(
    *,
    case,
    entered_by,
    result=None,
    result_date=None,
    diagnosis=None,
    note="",
    confirm_contradiction=False,
) -> list:
    """Record the lab result and/or final diagnosis of a case. Only a value that differs from the
    current one adds a row (the old rows stay: that is the correction history); changing a value
    already recorded needs a note saying why. A negative PCR with a final diagnosis of mpox is
    refused (code "contradiction", saying what it means) unless `confirm_contradiction`. Returns the rows added."""
    if result is None and diagnosis is None:
        raise ValidationError("Choose a lab result, a final diagnosis, or both.", code="nothing_given")
    current_lab = case.lab_results.first()
    current_diagnosis = case.final_diagnoses.first()
    if result in (LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE) and result_date is None:
        raise ValidationError("Please give the date of the lab result.", code="result_date")
    if result_date is not None and result_date > timezone.localdate():
        raise ValidationError("The lab result date is in the future: please check it.", code="result_date")
    if result == LabResult.Result.NOT_TESTED:
        result_date = None
    lab_changes = result is not None and (
        current_lab is None or (current_lab.result, current_lab.result_date) != (result, result_date)
    )
    diagnosis_changes = diagnosis is not None and (
        current_diagnosis is None or current_diagnosis.diagnosis != diagnosis
    )
    if not (lab_changes or diagnosis_changes):
        raise ValidationError(
            "Nothing changed: the lab result and diagnosis are already recorded as given.", code="unchanged"
        )
    corrects = (lab_changes and current_lab is not None) or (diagnosis_changes and current_diagnosis is not None)
    if corrects and not note.strip():
        raise ValidationError("Please say why you are correcting the recorded result.", code="note")
    resulting_lab = result if lab_changes else (current_lab.result if current_lab else None)
    resulting_diagnosis = (
        diagnosis if diagnosis_changes else (current_diagnosis.diagnosis if current_diagnosis else None)
    )
    contradiction = resulting_lab == LabResult.Result.NEGATIVE and resulting_diagnosis == FinalDiagnosis.Diagnosis.MPOX
    if contradiction and not confirm_contradiction:
        raise ValidationError(CONTRADICTION_MESSAGE, code="contradiction")
    added = []
    if lab_changes:
        added.append(
            LabResult.objects.create(
                case=case, result=result, result_date=result_date, entered_by=entered_by, note=note
            )
        )
        audit(
            actor=entered_by,
            action="record_lab_result",
            obj=case,
            result=result,
            result_date=result_date.isoformat() if result_date else None,
            corrects=current_lab.result if current_lab else None,
            confirmed_contradiction=contradiction,
        )
    if diagnosis_changes:
        added.append(FinalDiagnosis.objects.create(case=case, diagnosis=diagnosis, entered_by=entered_by, note=note))
        audit(
            actor=entered_by,
            action="record_final_diagnosis",
            obj=case,
            diagnosis=diagnosis,
            corrects=current_diagnosis.diagnosis if current_diagnosis else None,
            confirmed_contradiction=contradiction,
        )
    return added


def export_training_set(*, out_dir, actor=None, operator="") -> dict:
    """Write the consented, labelled photos as an `ml` dataset: `mpox/`, `non_mpox/<differential class>/`
    (`ml.diagnoses`: the one table from final diagnoses to the differential's classes) and
    `dataset.csv` (pseudonymous patient id, lesion box). Only photos whose patient currently opts in
    to research and whose case has a lab result or final diagnosis; no names, emails or references.
    `out_dir` must be new or empty, so a withdrawn patient's photos never linger from an earlier export.
    Audited. Returns a summary."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValidationError(f"{out_dir} is not empty: export into a new folder.", code="not_empty")
    rows, unlabelled = [], 0
    for photo in exportable_photos():
        label = is_mpox(photo.lab_result, photo.final_diagnosis)
        if label is None:  # not tested and no diagnosis, or a negative PCR against a diagnosis of mpox
            unlabelled += 1
            continue
        folder = training_folder(mpox=label, diagnosis=photo.final_diagnosis)
        patient = _pseudonym("patient", photo.patient_id)
        relative = f"{folder}/{patient}_{_pseudonym('photo', photo.pk)}.jpg"
        target = out_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with photo.image.open("rb") as source:
            target.write_bytes(source.read())
        box, box_source = _training_box(photo)
        rows.append(
            [
                relative,
                patient,
                *(box or ("", "", "", "")),
                box_source,
                "lab" if photo.lab_result in (LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE) else "diagnosis",
            ]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "dataset.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "patient_id", "x0", "y0", "x1", "y1", "box_source", "label_source"])
        writer.writerows(rows)
    summary = {
        "photos": len(rows),
        "mpox": sum(row[0].startswith("mpox/") for row in rows),
        "patients": len({row[1] for row in rows}),
        "skipped_without_label": unlabelled,
    }
    audit(
        actor=actor,
        action="export_training_set",
        obj=None,
        out_dir=str(out_dir.resolve()),
        operator=operator,
        **summary,
    )
    return summary


def _pseudonym(kind, pk) -> str:
    """Stable across exports (so patient-grouped splits hold), meaningless without SECRET_KEY."""
    return salted_hmac(f"triage.export.{kind}", str(pk)).hexdigest()[:12]


def _training_box(photo):
    """The box drawn by the patient or a clinician, else the automatic box the active model used."""
    if photo.roi is not None:
        return photo.roi, photo.roi_source
    latest = photo.prediction_history[0] if photo.prediction_history else None
    if latest is not None and latest.roi is not None:
        return latest.roi, latest.roi_source
    return None, RoiSource.NONE


def delete_photo_files(*, photos, reason, actor=None, request=None) -> int:
    """Delete the stored photo files (the normalised one, and the original if the worker has not yet
    deleted it) and heatmap files of `photos`; rows, scores, decisions and the audit
    trail stay, and each photo records when and why. Returns how many photos had files deleted.

    Files go first, then the row is marked: if marking fails, the next run deletes again
    (deleting a missing file is a no-op), so no file outlives a photo marked deleted.
    """
    deleted = 0
    for photo in photos:
        if photo.files_deleted_at is not None:
            continue
        predictions = list(photo.predictions.active().exclude(heatmap=""))
        for field_file in [photo.original, photo.image, *(prediction.heatmap for prediction in predictions)]:
            if field_file.name:
                field_file.storage.delete(field_file.name)
        with transaction.atomic():
            photo.predictions.active().update(heatmap="")
            Photo.objects.filter(pk=photo.pk).update(
                original="",
                image="",
                files_deleted_at=timezone.now(),
                files_deleted_reason=reason,
                updated_at=timezone.now(),
            )
            audit(
                actor=actor,
                action="delete_photo_files",
                obj=photo,
                request=request,
                reason=reason,
                heatmaps=len(predictions),
            )
        deleted += 1
    return deleted


def _queue_for_review(case):
    """New photos put the case in the queue: the first ones, or a retake the clinician asked for."""
    case = Case.objects.select_for_update().get(pk=case.pk)
    if case.queued_at is None or case.outcome == Outcome.RETAKE:
        case.queued_at = timezone.now()
        if case.outcome == Outcome.RETAKE:
            case.outcome = Outcome.PENDING
        case.save(update_fields=["queued_at", "outcome", "updated_at"])


def _check_not_claimed_by_another(case, clinician):
    holder = case.claim_holder
    if holder is not None and holder.pk != clinician.pk:
        raise ValidationError(f"{holder} is working on this case; take it over first.", code="claimed")


def _set_roi(photo, box, source):
    photo.roi = box
    photo.roi_source = source
