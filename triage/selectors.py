"""Reads for the triage domain: the clinician queue, case pages, photo access."""
from django.db.models import Count, F, IntegerField, Prefetch, Q, Value, When
from django.db.models import Case as CaseWhen

from portal.booking.models import Appointment
from triage.models import Case, Decision, Photo, Prediction

QUEUE_FILTERS = {
    "flagged": Q(flagged=True),
    "undecided": Q(outcome=Case.Outcome.PENDING),
    "all": Q(),
}
WAITING_STATUSES = [Photo.Status.RECEIVED, Photo.Status.ANALYSING, Photo.Status.NO_MODEL]
PROBLEM_STATUSES = [Photo.Status.REJECTED, Photo.Status.FAILED]


def case_queue(*, queue_filter="all"):
    """Cases with photos: flagged-and-undecided first, then highest probability, then soonest appointment."""
    attention_first = CaseWhen(
        When(flagged=True, outcome=Case.Outcome.PENDING, then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    return (
        Case.objects.filter(QUEUE_FILTERS[queue_filter])
        .exclude(appointment__status=Appointment.Status.CANCELLED)
        .select_related("appointment__slot__clinic", "appointment__patient")
        .annotate(
            photo_count=Count("photos"),
            photos_analysed=Count("photos", filter=Q(photos__status=Photo.Status.ANALYSED)),
            photos_waiting=Count("photos", filter=Q(photos__status__in=WAITING_STATUSES)),
            photos_problem=Count("photos", filter=Q(photos__status__in=PROBLEM_STATUSES)),
            attention=attention_first,
        )
        .filter(photo_count__gt=0)
        .order_by("attention", F("max_probability").desc(nulls_last=True), "appointment__slot__starts_at", "pk")
    )


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

