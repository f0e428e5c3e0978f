"""A synthetic clinic history for the demo (`seed_demo`): four weeks of past appointments at two
sites, a photo each, the active model's score, a challenger's shadow score, clinicians' decisions,
lab results and final diagnoses, so the performance and comparison pages show something.

Everything here is invented: the photos are drawn shapes and the scores are drawn from beta
distributions by lab outcome, not produced by a model. Never use it to judge a model.
"""
import io
from datetime import datetime, time, timedelta

import numpy as np
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone
from PIL import Image, ImageDraw

from portal.booking.models import Appointment, Clinic, Service, Slot
from triage import registry
from triage.analysis import read_photo, record_prediction, render_heatmap
from triage.models import Decision, FinalDiagnosis, LabResult, ModelVersion, Outcome, Photo, Prediction
from triage.services import accept_photo, create_case, record_decision, record_ground_truth

SECOND_SITE = "Demo Riverside Clinic"
DAYS_BACK = 28
CASES_PER_DAY = 3
MPOX_SHARE = 0.3
PATIENTS = 24
CHALLENGER_VERSION = "demo-challenger (shipped weights; synthetic history)"
OTHER_DIAGNOSES = [d for d in FinalDiagnosis.Diagnosis.values if d != FinalDiagnosis.Diagnosis.MPOX]
SEED = 7


def seed_history(*, clinic, clinician, log):
    """Create the history once (skipped when the demo sites already have past appointments)."""
    sites = [clinic, Clinic.objects.get_or_create(name=SECOND_SITE, defaults={"address": "2 River Road"})[0]]
    if Appointment.objects.filter(slot__clinic__in=sites, slot__starts_at__lt=timezone.now()).exists():
        return 0
    active = registry.active_model_version()
    if active is None:
        registry.register_checkpoints()
        active = registry.active_model_version()
    if active is None:
        log("No model installed: the demo history needs one (manage.py register_models).")
        return 0
    challenger = _demo_challenger(active)
    rng = np.random.default_rng(SEED)
    patients = [_patient(index) for index in range(PATIENTS)]
    today = timezone.localdate()
    created = 0
    for days_ago in range(DAYS_BACK, 0, -1):
        day = today - timedelta(days=days_ago)
        if day.weekday() >= 5:
            continue
        for slot_index in range(CASES_PER_DAY):
            site = sites[(days_ago + slot_index) % 2]
            starts_at = timezone.make_aware(datetime.combine(day, time(10 + 2 * slot_index)))
            _case(rng, site, starts_at, patients[rng.integers(PATIENTS)], clinician, active, challenger)
            created += 1
    return created


def _demo_challenger(active):
    """The shipped checkpoint registered a second time as the challenger, with a higher threshold,
    so the comparison page and shadow runs on new photos have something to show."""
    challenger, _ = ModelVersion.objects.get_or_create(
        version=CHALLENGER_VERSION,
        defaults={
            "architecture": active.architecture, "checkpoint_path": active.checkpoint_path,
            "threshold": min(0.9, active.threshold * 1.5), "operating_point": "demo only", "metadata": {},
        },
    )
    if registry.challenger_model_version() is None:
        registry.make_challenger(challenger)
    return challenger


def _patient(index):
    user, created = User.objects.get_or_create(
        username=f"demo-history-{index:02d}", defaults={"email": f"demo-history-{index:02d}@example.org"},
    )
    if created:
        user.set_unusable_password()
        user.save()
    return user


def _case(rng, site, starts_at, patient, clinician, active, challenger):
    mpox = bool(rng.random() < MPOX_SHARE)
    service, _ = Service.objects.get_or_create(name="Skin lesion review")
    slot = Slot.objects.create(clinic=site, service=service, starts_at=starts_at)
    # The booking service refuses past slots by design; a past visit is written directly.
    onset = starts_at.date() - timedelta(days=int(rng.integers(1, 15)))
    appointment = Appointment.objects.create(
        patient=patient, slot=slot, status=Appointment.Status.ATTENDED, consent_care=True,
        consent_research=bool(rng.random() < 0.6),
        questionnaire={"version": 1, "onset_date": onset.isoformat(), "notes": "Synthetic demo history."},
    )
    case = create_case(appointment=appointment)
    body_site = Photo.BodySite.GENITAL if rng.random() < (0.7 if mpox else 0.4) else Photo.BodySite.TRUNK
    photo = accept_photo(case=case, uploaded_by=patient, uploaded_file=_synthetic_photo(rng, mpox), body_site=body_site)
    score = float(rng.beta(4, 2.5) if mpox else rng.beta(2, 5))
    image = read_photo(photo)
    analysis = _analysis(image, score)
    record_prediction(photo=photo, model_version=active, analysis=analysis, heatmap_jpeg=render_heatmap(image, analysis),
                      timings_ms={})
    shadow = float(rng.beta(4.5, 2.2) if mpox else rng.beta(1.8, 5))
    Prediction.all_roles.create(
        photo=photo, model_version=challenger, role=Prediction.Role.CHALLENGER, probability=shadow,
        threshold=challenger.threshold, flagged=shadow >= challenger.threshold, roi=analysis.roi, roi_source="auto",
    )
    if rng.random() < 0.9:
        suspected = rng.random() < (0.9 if mpox else 0.2)
        record_decision(
            case=case, clinician=clinician, outcome=Outcome.SUSPECTED if suspected else Outcome.NOT_SUSPECTED,
            action=Decision.Action.ISOLATION_ROOM if suspected else Decision.Action.STANDARD,
        )
    tested = rng.random() < 0.85
    record_ground_truth(
        case=case, entered_by=clinician,
        result=(LabResult.Result.POSITIVE if mpox else LabResult.Result.NEGATIVE) if tested else LabResult.Result.NOT_TESTED,
        result_date=starts_at.date() + timedelta(days=3) if tested else None,
        diagnosis=FinalDiagnosis.Diagnosis.MPOX if mpox else str(rng.choice(OTHER_DIAGNOSES)),
    )


def _synthetic_photo(rng, mpox):
    """Skin-coloured background with a few drawn lesions (rings for the mpox cases)."""
    image = Image.new("RGB", (240, 180), tuple(int(v) for v in rng.integers([170, 120, 90], [230, 180, 150])))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 5))):
        x, y, r = int(rng.integers(50, 190)), int(rng.integers(40, 140)), int(rng.integers(8, 20))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(150, 60, 60), outline=(240, 230, 200) if mpox else None, width=4)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return SimpleUploadedFile("synthetic.jpg", buffer.getvalue(), "image/jpeg")


def _analysis(image, score):
    from ml import Analysis

    yy, xx = np.mgrid[0:image.height, 0:image.width]
    heatmap = np.exp(-(((xx - image.width / 2) / 50) ** 2 + ((yy - image.height / 2) / 40) ** 2)).astype(np.float32)
    return Analysis(probability=score, heatmap=heatmap, roi=(40, 30, 200, 150), roi_source="auto")
