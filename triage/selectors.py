"""Reads for the triage domain: the clinician queue, case pages, photo access, notifications,
exports, and what admins see of the running system (queues, waiting photos,
retention). Staff reads take `site_ids` (the clinic sites the user works at; None: every site),
computed by `triage.permissions.staff_site_ids`."""

from collections import Counter, defaultdict
from datetime import datetime, time, timedelta

from celery import current_app
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Case as CaseWhen
from django.db.models import Count, F, IntegerField, OuterRef, Prefetch, Q, Subquery, Value, When
from django.utils import timezone
from kombu.exceptions import ChannelError

from core.models import AuditEvent
from registry.models import ModelVersion
from triage.models import Case, Decision, FinalDiagnosis, LabResult, Outcome, Photo, PhotoOutcome, Prediction

# What the staff badge counts and the "flagged" filter shows: flagged cases nobody has decided yet.
FLAGGED_UNDECIDED = Q(flagged=True, outcome=Outcome.PENDING)

QUEUE_STATUSES = {
    "all": ("All", Q()),
    "flagged": ("Flagged, undecided", FLAGGED_UNDECIDED),
    "undecided": ("Undecided", Q(outcome=Outcome.PENDING)),
    "decided": ("Decided", Q(outcome__in=[Outcome.SUSPECTED, Outcome.NOT_SUSPECTED])),
    "retake": ("Awaiting retake", Q(outcome=Outcome.RETAKE)),
}
QUEUE_PERIODS = {"any": "Any day", "today": "Today", "week": "Next 7 days"}


def _clinic(via=""):
    """The ORM path to a case's clinic site (see `Case.booking_path`)."""
    return Case.booking_path("clinic", via=via)


def _starts_at(via=""):
    """The ORM path to a case's appointment time (see `Case.booking_path`)."""
    return Case.booking_path("starts_at", via=via)


def staff_cases(*, site_ids, open_only=True):
    """Cases of these sites (None: every site); only open ones (appointment not cancelled) unless told."""
    cases = Case.objects.filter(is_open=True) if open_only else Case.objects.all()
    return cases if site_ids is None else cases.filter(**{f"{_clinic()}__in": site_ids})


def case_queue(*, site_ids, status="all", period="any", site=None, claimed_by=None, search="", now=None):
    """Cases with photos, most urgent first: flagged and undecided, then other undecided, then
    awaiting a retake, then decided; within each, the soonest appointment first.

    Each case carries photo counts (`photo_count`, `photos_analysed`, `photos_waiting`, `photos_problem`: rejected or
    failed, so the patient needs to retake), the latest problem's reason code (`problem_reason`) and the
    threshold of the top-scoring prediction (`score_threshold`).
    """
    now = now or timezone.now()
    urgency = CaseWhen(
        When(FLAGGED_UNDECIDED, then=Value(0)),
        When(outcome=Outcome.PENDING, then=Value(1)),
        When(outcome=Outcome.RETAKE, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    problem_photos = Photo.objects.filter(case=OuterRef("pk"), status__in=Photo.PROBLEM_STATUSES).order_by(
        "-created_at"
    )
    top_prediction = Prediction.objects.active().filter(
        photo__case=OuterRef("pk"), probability=OuterRef("max_probability")
    )
    cases = (
        staff_cases(site_ids=site_ids)
        .filter(QUEUE_STATUSES[status][1], _period_filter(period, now))
        .select_related(_clinic(), "appointment__patient", "claimed_by")
        .annotate(
            photo_count=Count("photos"),
            photos_analysed=Count("photos", filter=Q(photos__status=Photo.Status.ANALYSED)),
            photos_waiting=Count("photos", filter=Q(photos__status__in=Photo.WAITING_STATUSES)),
            photos_problem=Count("photos", filter=Q(photos__status__in=Photo.PROBLEM_STATUSES)),
            problem_reason=Subquery(problem_photos.values("status_reason")[:1]),
            score_threshold=Subquery(top_prediction.order_by("-created_at").values("threshold")[:1]),
            urgency=urgency,
        )
        .filter(photo_count__gt=0)
    )
    if site is not None:
        cases = cases.filter(**{_clinic(): site})
    if claimed_by is not None:
        cases = cases.filter(claimed_by=claimed_by, claimed_until__gt=now)
    for term in search.split():
        cases = cases.filter(
            Q(appointment__reference__icontains=term)
            | Q(appointment__patient__first_name__icontains=term)
            | Q(appointment__patient__last_name__icontains=term)
            | Q(appointment__patient__username__icontains=term)
            | Q(appointment__patient__email__icontains=term)
        )
    return cases.order_by("urgency", _starts_at(), "pk")


def latest_outcome_counts(*, cases):
    """{case id: [(outcome, number of photos whose latest prediction has it), ...]} in outcome order."""
    latest = (
        Prediction.objects.active().filter(photo=OuterRef("pk")).order_by("-created_at", "-id").values("outcome")[:1]
    )
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


def flagged_undecided_count(*, site_ids):
    """The number on every staff page: flagged cases nobody has decided yet."""
    return staff_cases(site_ids=site_ids).filter(FLAGGED_UNDECIDED).count()


def queue_sites(*, site_ids):
    """(id, name) of the sites with open cases that these staff see, for the site filter."""
    rows = staff_cases(site_ids=site_ids).values_list(f"{_clinic()}__id", f"{_clinic()}__name").distinct()
    return sorted(rows, key=lambda row: row[1])


def _period_filter(period, now):
    if period == "any":
        return Q()
    start = timezone.make_aware(datetime.combine(timezone.localdate(now), time.min))
    end = start + timedelta(days=1 if period == "today" else 7)
    return Q(**{f"{_starts_at()}__gte": start, f"{_starts_at()}__lt": end})


def case_for_review(case_id, *, site_ids):
    """A case these staff may see (cancelled ones too, for the record), with its photos (each with
    `prediction_history`, newest first) and decisions (newest first), or None."""
    predictions = Prediction.objects.active().select_related("model_version", "requested_by")
    return (
        staff_cases(site_ids=site_ids, open_only=False)
        .select_related(_clinic(), "appointment__patient", "claimed_by")
        .prefetch_related(
            Prefetch(
                "photos",
                queryset=Photo.objects.prefetch_related(
                    Prefetch("predictions", queryset=predictions, to_attr="prediction_history")
                ),
            ),
            Prefetch("decisions", queryset=Decision.objects.select_related("clinician", "countersigned_by")),
        )
        .filter(pk=case_id)
        .first()
    )


def current_patient_decision(*, case):
    """The decision the patient should act on now: the latest one, unless the case is back in
    review (a retake was sent, so the request is done) or has none. Never carries a score."""
    if case.outcome == Outcome.PENDING:
        return None
    return case.decisions.order_by("-created_at", "-id").first()


def site_changes(*, case):
    """The case's moves between clinic sites (audited by `services.record_site_change`), oldest first."""
    return AuditEvent.objects.filter(case_reference=case.appointment.reference, action="change_site").order_by(
        "created_at", "id"
    )


def decisions_on_day(*, day, site_ids):
    """Decisions recorded on a local calendar day at these sites, oldest first (for the CSV export)."""
    start = timezone.make_aware(datetime.combine(day, time.min))
    decisions = Decision.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1))
    if site_ids is not None:
        decisions = decisions.filter(**{f"{_clinic(via='case__')}__in": site_ids})
    return decisions.select_related(_clinic(via="case__"), "clinician", "countersigned_by").order_by("created_at", "id")


def cases_due_for_escalation(*, now, within):
    """Open, flagged, undecided cases not yet escalated whose appointment starts within `within`."""
    return (
        Case.objects.filter(
            is_open=True,
            flagged=True,
            outcome=Outcome.PENDING,
            escalated_at__isnull=True,
            **{f"{_starts_at()}__gt": now, f"{_starts_at()}__lte": now + within},
        )
        .select_related(_clinic())
        .order_by(_starts_at())
    )


def on_duty_staff(clinic_id):
    """Active staff on duty at a site who may decide cases."""
    return _deciders().filter(site_memberships__clinic_id=clinic_id, site_memberships__on_duty=True).distinct()


def clinic_leads(clinic_id):
    """Active members of a site who may export its decisions (clinic leads)."""
    leads = _with_permission("export_decisions").filter(site_memberships__clinic_id=clinic_id)
    return leads.distinct()


def _deciders():
    return _with_permission("decide_cases")


def _with_permission(codename):
    perm = Q(groups__permissions__codename=codename, groups__permissions__content_type__app_label="triage")
    direct = Q(user_permissions__codename=codename, user_permissions__content_type__app_label="triage")
    return get_user_model().objects.filter(Q(is_active=True) & (perm | direct | Q(is_superuser=True)))


def photo_for_access(photo_id):
    """The photo with what a permission check needs, or None."""
    return Photo.objects.select_related(_clinic(via="case__")).filter(pk=photo_id).first()


def prediction_for_access(photo_id, prediction_id):
    predictions = Prediction.objects.active().select_related(_clinic(via="photo__case__"))
    return predictions.filter(pk=prediction_id, photo_id=photo_id).first()


def patient_case(*, patient, reference):
    """The case of `patient`'s own appointment with this booking reference, or None."""
    return Case.objects.filter(appointment__reference=reference, appointment__patient=patient).first()


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
        cases = cases.filter(**{f"{_starts_at()}__date__gte": start})
    if end is not None:
        cases = cases.filter(**{f"{_starts_at()}__date__lte": end})
    if clinic_id is not None:
        cases = cases.filter(**{f"{_clinic()}_id": clinic_id})
    return cases


def lab_confirmed_cases(**filters):
    """Cases whose current lab result is mpox PCR positive or negative (see cases_with_ground_truth)."""
    return cases_with_ground_truth(**filters).filter(
        lab_result__in=[LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE]
    )


def clinic_sites():
    """(id, name) of every clinic site that has a case, for the performance filters."""
    return list(
        Case.objects.values_list(f"{_clinic()}_id", f"{_clinic()}__name").distinct().order_by(f"{_clinic()}__name")
    )


def latest_predictions_by_case(*, model_version, case_ids):
    """{case_id: [the newest prediction by `model_version` of each of the case's photos]}, in
    either role: a version's own record counts whether it ran as challenger or as the active model."""
    by_photo = {}
    predictions = Prediction.objects.filter(model_version=model_version, photo__case_id__in=case_ids).select_related(
        "photo"
    )
    for prediction in predictions.order_by("photo_id", "-created_at", "-id"):
        by_photo.setdefault(prediction.photo_id, prediction)
    by_case = {}
    for prediction in by_photo.values():
        by_case.setdefault(prediction.photo.case_id, []).append(prediction)
    return by_case


def case_latest_predictions(case):
    """The newest prediction of the active model's role for each of the case's photos that has one,
    in upload order (what flags the case: `analysis.refresh_case_flag`)."""
    latest = []
    for photo in case.photos.order_by("created_at", "pk"):
        prediction = photo.predictions.active().select_related("model_version").order_by("-created_at", "-id").first()
        if prediction is not None:
            latest.append(prediction)
    return latest


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
        .prefetch_related(Prefetch("predictions", queryset=Prediction.objects.active(), to_attr="prediction_history"))
        .order_by("pk")
    )


def photos_to_requeue(*, worker=None):
    """Photos whose analysis will not happen unless queued again, oldest case first:

    - received but never handed to the broker (it was down), or handed over ANALYSIS_REQUEUE_AFTER_SECONDS
      ago and still not started (a broker that lost its queue);
    - analysing past the lease (CELERY_TASK_TIME_LIMIT, which no run outlives): their worker died;
    - analysing by `worker`, when that worker has just started: it died while analysing them;
    - waiting for a model, once one is active.

    Photos of cancelled appointments are never analysed, so never queued again, except a lost or
    abandoned one still holding its original (as sent, metadata and all): its task strips that
    (`analysis.strip_unclaimed_originals`), so that no original outlives a lost task.
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
    unstripped = stalled & Q(case__is_open=False) & ~Q(original="")
    if ModelVersion.objects.filter(is_active=True).exists():
        stalled |= Q(status=Photo.Status.NO_MODEL)
    return list(
        Photo.objects.filter((stalled & Q(case__is_open=True)) | unstripped, files_deleted_at__isnull=True).order_by(
            "case_id", "pk"
        )
    )


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
