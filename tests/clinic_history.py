"""A small synthetic clinic history for the performance, comparison and export tests, built with the
demo's own steps for one past case (`demo.history`: the visit, the scores, the clinician's decision
and the lab result), with hand-chosen values instead of drawn ones.
"""

import io
from datetime import timedelta

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image

from demo.history import past_visit, record_outcome, record_scores
from triage.models import LabResult, Outcome, Photo

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
# The automatic box every score here was computed on (test_export reads it back).
SCORED_BOX = (20, 10, 120, 90)


def jpeg_upload(seed):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(60, 200, (120, 160, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return SimpleUploadedFile(f"lesion{seed}.jpg", buffer.getvalue(), "image/jpeg")


def book_past_case(*, patient, clinic, days_ago, consent_research=False, seed=0, body_site=Photo.BodySite.GENITAL):
    """A case whose appointment was `days_ago` days (and `seed` minutes) ago, with one uploaded photo."""
    starts_at = timezone.now().replace(microsecond=0) - timedelta(days=days_ago, minutes=seed)
    return past_visit(
        patient=patient,
        clinic=clinic,
        starts_at=starts_at,
        photo_file=jpeg_upload(seed),
        body_site=body_site,
        consent_research=consent_research,
    )


def record_score(photo, model_version, probability, heatmap_jpeg):
    return record_scores(
        photo=photo, active=model_version, probability=probability, roi=SCORED_BOX, heatmap_jpeg=heatmap_jpeg
    )


def build_history(*, patient, clinician, clinic, active, heatmap_jpeg, challenger=None, rows=HISTORY, days_ago=10):
    """One case per row, a day apart going back from `days_ago`; returns the cases in row order."""
    cases = []
    for index, (lab, score, outcome, challenger_score) in enumerate(rows):
        case, photo = book_past_case(patient=patient, clinic=clinic, days_ago=days_ago + index, seed=index)
        record_scores(
            photo=photo,
            active=active,
            probability=score,
            roi=SCORED_BOX,
            heatmap_jpeg=heatmap_jpeg,
            challenger=challenger,
            shadow_probability=challenger_score,
        )
        record_outcome(
            case=case, clinician=clinician, outcome=outcome, lab_result=lab, result_date=timezone.localdate()
        )
        cases.append(case)
    return cases
