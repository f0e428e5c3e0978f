"""Reads for the triage domain: the clinician queue, case pages, photo access, model cards,
and what admins see of the running system (queues, waiting photos, retention)."""
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

from celery import current_app
from django.conf import settings
from django.db.models import Case as CaseWhen
from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, Q, Subquery, Value, When
from django.utils import timezone
from kombu.exceptions import ChannelError

from triage.models import Case, Decision, FinalDiagnosis, LabResult, ModelVersion, Outcome, Photo, PhotoOutcome, Prediction

QUEUE_FILTERS = {
    "flagged": Q(flagged=True),
    "undecided": Q(outcome=Outcome.PENDING),
    "all": Q(),
}


def case_queue(*, queue_filter="all"):
    """Cases with photos: flagged-and-undecided first, then highest probability, then soonest appointment."""
    attention_first = CaseWhen(
        When(flagged=True, outcome=Outcome.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return (
        Case.objects.filter(QUEUE_FILTERS[queue_filter], is_open=True)
        .select_related("appointment__slot__clinic", "appointment__patient")
        .annotate(
            photo_count=Count("photos"),
            photos_waiting=Count("photos", filter=Q(photos__status__in=Photo.WAITING_STATUSES)),
            photos_failed=Count("photos", filter=Q(photos__status=Photo.Status.FAILED)),
            attention=attention_first,
        )
        .filter(photo_count__gt=0)
        .order_by("attention", F("max_probability").desc(nulls_last=True), "appointment__slot__starts_at", "pk")
    )


def latest_outcome_counts(*, cases):
    """{case id: [(outcome, number of photos whose latest prediction has it), ...]} in outcome order."""
    latest = Prediction.objects.filter(photo=OuterRef("pk")).order_by("-created_at", "-id").values("outcome")[:1]
    rows = (
        Photo.objects.filter(case__in=[case.pk for case in cases])
        .annotate(latest_outcome=Subquery(latest))
        .values_list("case_id", "latest_outcome")
    )
    counts = defaultdict(Counter)
    for case_id, outcome in rows:
        if outcome:
            counts[case_id][outcome] += 1
    return {
        case_id: [(PhotoOutcome(outcome), counter[outcome]) for outcome in PhotoOutcome.values if counter[outcome]]
        for case_id, counter in counts.items()
    }


def case_for_review(case_id):
    """A case with its photos (each with `prediction_history`, newest first) and decisions."""
    predictions = Prediction.objects.select_related("model_version", "requested_by")
    return (
        Case.objects.select_related("appointment__slot__clinic", "appointment__patient")
        .prefetch_related(
            Prefetch("photos", queryset=Photo.objects.prefetch_related(
                Prefetch("predictions", queryset=predictions, to_attr="prediction_history")
            )),
            Prefetch("decisions", queryset=Decision.objects.select_related("clinician")),
        )
        .filter(pk=case_id)
        .first()
    )


def photo_for_access(photo_id):
    """The photo with what a permission check needs, or None."""
    return Photo.objects.select_related("case__appointment").filter(pk=photo_id).first()


def prediction_for_access(photo_id, prediction_id):
    return Prediction.objects.select_related("photo__case__appointment").filter(pk=prediction_id, photo_id=photo_id).first()


def patient_case(*, patient, reference):
    """The case of `patient`'s own appointment with this booking reference, or None."""
    return Case.objects.filter(appointment__reference=reference, appointment__patient=patient).first()


def model_card_text(model_version):
    """The model card shipped beside a version's checkpoint (MODEL_CARD.md), or None."""
    card = Path(model_version.checkpoint_path).with_name("MODEL_CARD.md")
    return card.read_text(encoding="utf-8") if card.is_file() else None


def cases_with_ground_truth(*, start=None, end=None, clinic_id=None):
    """Cases annotated with their current (newest) `lab_result` and `final_diagnosis`, optionally
    limited to appointments from `start` to `end` (dates, inclusive) at one clinic site."""
    newest_lab = LabResult.objects.filter(case=OuterRef("pk")).order_by("-created_at", "-id")
    newest_diagnosis = FinalDiagnosis.objects.filter(case=OuterRef("pk")).order_by("-created_at", "-id")
    cases = Case.objects.annotate(
        lab_result=Subquery(newest_lab.values("result")[:1]),
        final_diagnosis=Subquery(newest_diagnosis.values("diagnosis")[:1]),
    )
    if start is not None:
        cases = cases.filter(appointment__slot__starts_at__date__gte=start)
    if end is not None:
        cases = cases.filter(appointment__slot__starts_at__date__lte=end)
    if clinic_id is not None:
        cases = cases.filter(appointment__slot__clinic_id=clinic_id)
    return cases


def lab_confirmed_cases(**filters):
    """Cases whose current lab result is mpox PCR positive or negative (see cases_with_ground_truth)."""
    return cases_with_ground_truth(**filters).filter(
        lab_result__in=[LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE]
    )


def clinic_sites():
    """(id, name) of every clinic site that has a case, for the performance filters."""
    return list(
        Case.objects.values_list("appointment__slot__clinic_id", "appointment__slot__clinic__name")
        .distinct().order_by("appointment__slot__clinic__name")
    )


def latest_predictions_by_case(*, model_version, case_ids):
    """{case_id: [the newest prediction by `model_version` of each of the case's photos]}, in
    either role: a version's own record counts whether it ran as challenger or as the active model."""
    by_photo = {}
    predictions = Prediction.all_roles.filter(model_version=model_version, photo__case_id__in=case_ids).select_related("photo")
    for prediction in predictions.order_by("photo_id", "-created_at", "-id"):
        by_photo.setdefault(prediction.photo_id, prediction)
    by_case = {}
    for prediction in by_photo.values():
        by_case.setdefault(prediction.photo.case_id, []).append(prediction)
    return by_case


def ground_truth_history(case):
    """The case's lab results and final diagnoses, newest first (the first of each is current)."""
    return {
        "lab_results": list(case.lab_results.select_related("entered_by")),
        "final_diagnoses": list(case.final_diagnoses.select_related("entered_by")),
    }


def exportable_photos():
    """Analysed photos (files not deleted) of appointments whose patient currently opts in to research,
    with the case's current lab result and diagnosis; the caller keeps those with a training label."""
    truth = cases_with_ground_truth().filter(pk=OuterRef("case_id"))
    return (
        Photo.objects.filter(
            case__appointment__consent_research=True, status=Photo.Status.ANALYSED, files_deleted_at__isnull=True
        )
        .annotate(
            lab_result=Subquery(truth.values("lab_result")[:1]),
            final_diagnosis=Subquery(truth.values("final_diagnosis")[:1]),
            patient_id=F("case__appointment__patient_id"),
        )
        .filter(Q(lab_result__isnull=False) | Q(final_diagnosis__isnull=False))
        .prefetch_related(Prefetch("predictions", to_attr="prediction_history"))
        .order_by("pk")
    )


def model_versions_to_measure():
    """The active model, the challenger, then retired versions that made predictions (newest first)."""
    versions = ModelVersion.objects.filter(
        Q(predictions__isnull=False) | Q(is_active=True) | Q(is_challenger=True)
    ).distinct()
    return sorted(versions, key=lambda version: (not version.is_active, not version.is_challenger, -version.pk))


def model_versions():
    return ModelVersion.objects.order_by("-installed_at", "-pk")


def photos_to_requeue(*, worker=None):
    """Photos whose analysis will not happen unless queued again, oldest case first:

    - received but never handed to the broker (it was down), or handed over ANALYSIS_REQUEUE_AFTER_SECONDS
      ago and still not started (a broker that lost its queue);
    - analysing past the lease (CELERY_TASK_TIME_LIMIT, which no run outlives): their worker died;
    - analysing by `worker`, when that worker has just started: it died while analysing them;
    - waiting for a model, once one is active.
    """
    now = timezone.now()
    lost = Q(status=Photo.Status.RECEIVED) & (
        Q(queued_at__isnull=True) | Q(queued_at__lt=now - timedelta(seconds=settings.ANALYSIS_REQUEUE_AFTER_SECONDS))
    )
    abandoned = Q(status=Photo.Status.ANALYSING) & (
        Q(analysis_started_at__lt=now - timedelta(seconds=settings.CELERY_TASK_TIME_LIMIT))
        | Q(analysis_started_at__isnull=True)  # claimed before leases were recorded
        | (Q(analysis_worker=worker) if worker else Q(pk__in=[]))
    )
    stalled = lost | abandoned
    if ModelVersion.objects.filter(is_active=True).exists():
        stalled |= Q(status=Photo.Status.NO_MODEL)
    return list(Photo.objects.filter(stalled, files_deleted_at__isnull=True).order_by("case_id", "pk"))


# ---- Operations (admin's workers page) ----

def queue_lengths():
    """{queue name: messages waiting} for the inference and default queues, read from the broker."""
    names = [settings.INFERENCE_QUEUE, settings.CELERY_TASK_DEFAULT_QUEUE]
    lengths = {}
    with current_app.connection_for_read() as broker:
        for name in names:
            channel = broker.channel()
            try:
                lengths[name] = channel.queue_declare(queue=name, passive=True).message_count
            except ChannelError:  # never declared or emptied and removed (Redis): nothing waits
                lengths[name] = 0
            finally:
                channel.close()
    return lengths


def oldest_waiting_photo():
    """The photo that has waited longest for an analysis (received, analysing or no model), or None."""
    return (
        Photo.objects.filter(status__in=Photo.WAITING_STATUSES, files_deleted_at__isnull=True)
        .order_by("created_at", "pk")
        .first()
    )


def photos_past_retention():
    """Photos whose files are older than PHOTO_RETENTION_DAYS and not yet deleted (none when 0)."""
    if not settings.PHOTO_RETENTION_DAYS:
        return Photo.objects.none()
    cutoff = timezone.now() - timedelta(days=settings.PHOTO_RETENTION_DAYS)
    return Photo.objects.filter(created_at__lt=cutoff, files_deleted_at__isnull=True).order_by("pk")
