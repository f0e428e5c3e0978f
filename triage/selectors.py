"""Reads for the triage domain: the clinician queue, case pages, photo access, model cards."""
from pathlib import Path

from django.db.models import Count, F, IntegerField, Prefetch, Q, Value, When
from django.db.models import Case as CaseWhen

from triage.models import Case, Decision, Outcome, Photo, Prediction

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
            photos_analysed=Count("photos", filter=Q(photos__status=Photo.Status.ANALYSED)),
            photos_waiting=Count("photos", filter=Q(photos__status__in=Photo.WAITING_STATUSES)),
            photos_problem=Count("photos", filter=Q(photos__status__in=Photo.PROBLEM_STATUSES)),
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


def patient_case(*, patient, reference):
    """The case of `patient`'s own appointment with this booking reference, or None."""
    return Case.objects.filter(appointment__reference=reference, appointment__patient=patient).first()


def model_card_text(model_version):
    """The model card shipped beside a version's checkpoint (MODEL_CARD.md), or None."""
    card = Path(model_version.checkpoint_path).with_name("MODEL_CARD.md")
    return card.read_text(encoding="utf-8") if card.is_file() else None
