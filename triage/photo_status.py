"""A photo's status changes in one place: the table of allowed changes and the one function that
makes them. Every write of `Photo.status` goes through `change_status` (tests/core/test_structure.py
fails on one that does not).

    received ─▶ analysing ─▶ analysed | rejected (reason) | failed (reason) | no_model | as_is (reason)
        ▲            │
        └────────────┘  re-analysis, requeue of a lost or abandoned run, a retake's new run

    rejected | failed ─▶ replaced (a newer photo of the body site) | as_is (taken as it is)

A photo is created RECEIVED (`services.accept_photos`). Changes the table does not list are refused.
"""

from django.utils import timezone

from triage.models import Photo

Status = Photo.Status

# A recorded result (ANALYSED, or REJECTED with the model's reason) settles a photo from any status:
# whether a run may record is decided by `analysis.record_prediction` (the latest run records), and
# scripts and the demo history record results on photos they have just uploaded or already scored.
RESULTS = {Status.ANALYSED, Status.REJECTED, Status.AS_IS}
# A photo the patient owed a retake for is owed no longer (`settle_problem_photos`).
SETTLED = {Status.REPLACED, Status.AS_IS}

# status -> the statuses it may change to.
TRANSITIONS = {
    Status.RECEIVED: {Status.RECEIVED, Status.ANALYSING, Status.FAILED, *RESULTS},  # claimed by a run, or requeued
    # No model to run, the run failed, or a lost run is queued again (RECEIVED) or claimed anew.
    Status.ANALYSING: {Status.ANALYSING, Status.NO_MODEL, Status.FAILED, Status.RECEIVED, *RESULTS},
    Status.NO_MODEL: {Status.ANALYSING, Status.RECEIVED, Status.FAILED, *RESULTS},
    Status.ANALYSED: {Status.RECEIVED, *RESULTS},  # RECEIVED: a clinician asks for a new analysis
    # FAILED: the task that analysed it failed for good, and marks every unfinished photo of its batch.
    Status.REJECTED: {Status.RECEIVED, Status.FAILED, *RESULTS, *SETTLED},
    Status.FAILED: {Status.ANALYSING, Status.RECEIVED, Status.FAILED, *RESULTS, *SETTLED},
    # Settled photos are analysed again only when a clinician asks (RECEIVED).
    Status.REPLACED: {Status.RECEIVED},
    Status.AS_IS: {Status.RECEIVED, *RESULTS},
}


class TransitionRefused(ValueError):
    """A status change the table does not allow."""


def may_change(from_status, to_status) -> bool:
    return to_status in TRANSITIONS[from_status]


def change_status(photos, to_status, *, reason="", detail="", keep_reason=False, **fields) -> int:
    """Move `photos` to `to_status` with its `reason` code and the staff-only `detail` (both cleared
    when not given; both left as they are with `keep_reason`), writing `fields` with it. Returns how
    many photos changed.

    `photos` is one Photo (its current status must allow the change, else TransitionRefused; the
    instance is updated and saved) or a queryset (the photos whose stored status allows it change;
    the others are left as they are, in one UPDATE).
    """
    values = {"status": to_status, **fields}
    if not keep_reason:
        values.update(status_reason=reason, status_detail=detail[:300])
    if isinstance(photos, Photo):
        if not may_change(photos.status, to_status):
            raise TransitionRefused(f"Photo {photos.pk}: {photos.status} cannot become {to_status}.")
        for name, value in values.items():
            setattr(photos, name, value)
        photos.save(update_fields=[*values, "updated_at"])
        return 1
    allowed_from = [status for status, targets in TRANSITIONS.items() if to_status in targets]
    return photos.filter(status__in=allowed_from).update(**values, updated_at=timezone.now())


def settle_problem_photos(photos, *, status) -> int:
    """Photos (a queryset) the patient owed a retake for are owed no longer: `status` is REPLACED or
    AS_IS; status_reason keeps why each was a problem. Returns how many changed."""
    if status not in SETTLED:
        raise TransitionRefused(f"{status} does not settle a photo.")
    return change_status(photos.filter(status__in=Photo.PROBLEM_STATUSES), status, keep_reason=True)
