"""A small synthetic clinic history for the performance, comparison and export tests.

`build_history(...)` books past-dated appointments (booked through the booking service, then moved
into the past), uploads one photo per case, records the active model's score the worker's way,
optionally a challenger's shadow score, the clinician's decision and the lab result.
"""
import io
from datetime import timedelta

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from ml import Analysis
from portal.booking.models import Service, Slot
from portal.booking.services import book_appointment
from triage.analysis import record_prediction
from triage.models import Decision, LabResult, Outcome, Photo, Prediction
from triage.services import accept_photo, record_decision, record_ground_truth

# (lab result, active score, clinician outcome, challenger score), checked by hand in test_performance.
POS, NEG = LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE
S, N, P = Outcome.SUSPECTED, Outcome.NOT_SUSPECTED, Outcome.PENDING
HISTORY = [
    (POS, 0.90, S, 0.95),
    (POS, 0.70, S, 0.80),
    (POS, 0.60, N, 0.70),
    (POS, 0.30, S, 0.60),
    (NEG, 0.80, S, 0.30),
    (NEG, 0.40, N, 0.20),
    (NEG, 0.20, N, 0.10),
    (NEG, 0.10, N, 0.10),
    (NEG, 0.55, P, 0.60),
    (NEG, 0.05, N, 0.05),
    (NEG, 0.45, N, 0.40),
]


def jpeg_upload(seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(60, 200, (120, 160, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return SimpleUploadedFile(f"lesion{seed}.jpg", buffer.getvalue(), "image/jpeg")


def book_past_case(*, patient, clinic, days_ago, consent_research=False, seed=0, body_site=Photo.BodySite.GENITAL):
    """A case whose appointment was `days_ago` days ago, with one uploaded photo."""
    starts_at = timezone.now().replace(microsecond=0) + timedelta(days=1, minutes=seed)
    slot = Slot.objects.create(clinic=clinic, service=Service.objects.get_or_create(name="Skin lesion review")[0],
                               starts_at=starts_at)
    appointment = book_appointment(patient=patient, slot=slot, consent_care=True, consent_research=consent_research)
    Slot.objects.filter(pk=slot.pk).update(starts_at=timezone.now() - timedelta(days=days_ago, minutes=seed))
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=jpeg_upload(seed), body_site=body_site)
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.ANALYSED)
    return appointment.case, photo


def record_score(photo, model_version, probability, heatmap_jpeg):
    analysis = Analysis(probability=probability, heatmap=np.zeros((8, 8), np.float32), roi=(20, 10, 120, 90), roi_source="auto")
    return record_prediction(photo=photo, model_version=model_version, analysis=analysis, heatmap_jpeg=heatmap_jpeg, timings_ms={})


def record_shadow_score(photo, model_version, probability):
    """What `analysis.run_challenger_in_shadow` stores, with a chosen probability."""
    return Prediction.objects.create(
        photo=photo, model_version=model_version, role=Prediction.Role.CHALLENGER, probability=probability,
        threshold=model_version.threshold, flagged=probability >= model_version.threshold, roi=(20, 10, 120, 90),
        roi_source="auto",
    )


def build_history(*, patient, clinician, clinic, active, heatmap_jpeg, challenger=None, rows=HISTORY, days_ago=10):
    """One case per row, a day apart going back from `days_ago`; returns the cases in row order."""
    cases = []
    for index, (lab, score, outcome, challenger_score) in enumerate(rows):
        case, photo = book_past_case(patient=patient, clinic=clinic, days_ago=days_ago + index, seed=index)
        record_score(photo, active, score, heatmap_jpeg)
        if challenger is not None:
            record_shadow_score(photo, challenger, challenger_score)
        if outcome != Outcome.PENDING:
            action = Decision.Action.ISOLATION_ROOM if outcome == Outcome.SUSPECTED else Decision.Action.STANDARD
            record_decision(case=case, clinician=clinician, outcome=outcome, action=action)
        record_ground_truth(case=case, entered_by=clinician, result=lab, result_date=timezone.localdate())
        cases.append(case)
    return cases
