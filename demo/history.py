"""A synthetic clinic history for the demo (`seed_demo`): six weeks of past appointments at two
sites, questionnaire answers, a photo each, the active model's score, a challenger's shadow score,
clinicians' decisions, lab results and final diagnoses, and a history + image model fitted on the
earlier weeks, so the performance and comparison pages show something.

Everything here is invented: the photos are drawn shapes, the scores are drawn from beta
distributions and the answers from fixed shares by lab outcome, not produced by a model or patients. Never use it to judge a model.

The three steps of one past case (`past_visit`, `record_scores`, `record_outcome`) are shared with
the tests, which build a small hand-checked history with them.
"""

import io
from contextlib import contextmanager
from datetime import datetime, time, timedelta

import numpy as np
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.utils import timezone
from PIL import Image, ImageDraw

from demo.factories import (
    AppointmentFactory,
    ClinicFactory,
    ModelVersionFactory,
    ServiceFactory,
    ShadowPredictionFactory,
    SlotFactory,
    UserFactory,
)
from ml import Analysis
from modelops.services import register_history_model
from portal.booking.models import Appointment
from portal.booking.questionnaire import QUESTIONNAIRE_VERSION
from registry import versions
from triage.analysis import read_photo, record_prediction, render_heatmap
from triage.models import Decision, FinalDiagnosis, LabResult, Outcome, Photo
from triage.services import accept_photo, record_decision, record_ground_truth

SECOND_SITE = "Demo Riverside Clinic"
DAYS_BACK = 42
# The demo history + image model is fitted on the cases before this, and measured on the later ones.
HISTORY_FIT_DAYS_AGO = 15
CASES_PER_DAY = 3
MPOX_SHARE = 0.3
PATIENTS = 24
CHALLENGER_VERSION = "demo-challenger (shipped weights; synthetic history)"
OTHER_DIAGNOSES = [d for d in FinalDiagnosis.Diagnosis.values if d != FinalDiagnosis.Diagnosis.MPOX]
SEED = 7


@contextmanager
def without_after_commit_work():
    """Run the block in a transaction whose after-commit callbacks are dropped instead of run.

    The services queue work once their transaction commits: an analysis for each uploaded photo,
    an email to the patient for each decision, the flagged-case email and the webhooks of each
    event. For invented demo rows all of it is noise (emails to invented patients about past
    visits, analyses of photos whose scores are already recorded), and it would queue ahead of
    a new user's first real photo. The rows themselves are written exactly as the services write
    them. Django keeps the callbacks in `connection.run_on_commit` (as its own
    `TestCase.captureOnCommitCallbacks` reads them); those this block added are removed before
    it commits.
    """
    connection = transaction.get_connection()
    with transaction.atomic():
        registered_before = len(connection.run_on_commit)
        yield
        del connection.run_on_commit[registered_before:]


def seed_history(*, clinic, clinician, log):
    """Create the history once (skipped when the demo sites already have past appointments).
    Run it inside `without_after_commit_work` (as `seed_demo` does), or it queues work for every case."""
    sites = [clinic, ClinicFactory(name=SECOND_SITE, address="2 River Road")]
    if Appointment.objects.filter(slot__clinic__in=sites, slot__starts_at__lt=timezone.now()).exists():
        return 0
    active = versions.active_model_version()
    if active is None:
        versions.register_checkpoints()
        active = versions.active_model_version()
    if active is None:
        log("No model installed: the demo history needs one (manage.py register_models).")
        return 0
    challenger = _demo_challenger(active)
    rng = np.random.default_rng(SEED)
    patients = [UserFactory(username=f"demo-history-{index:02d}") for index in range(PATIENTS)]
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
    try:
        register_history_model(fitted_by=clinician, end=today - timedelta(days=HISTORY_FIT_DAYS_AGO))
    except ValidationError as error:
        log(f"No demo history + image model: {error.messages[0]}")
    return created


def past_visit(
    *,
    patient,
    clinic,
    starts_at,
    photo_file,
    body_site=Photo.BodySite.GENITAL,
    consent_research=False,
    questionnaire=None,
):
    """An attended visit at `starts_at` (in the past) with its case, consents and one uploaded photo.
    Returns (case, photo)."""
    slot = SlotFactory(clinic=clinic, service=ServiceFactory(), starts_at=starts_at)
    appointment = AppointmentFactory(
        patient=patient,
        slot=slot,
        status=Appointment.Status.ATTENDED,
        consent_research=consent_research,
        questionnaire=questionnaire or {},
    )
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=photo_file, body_site=body_site)
    read_photo(photo)  # normalised (metadata stripped) as the worker's first step does
    return appointment.case, photo


def record_scores(*, photo, active, probability, challenger=None, shadow_probability=None, roi=None, heatmap_jpeg=None):
    """The active model's score recorded the worker's way (`record_prediction`: the photo is
    analysed and the case flagged at the model's threshold), and the challenger's shadow score when
    given. The scores are chosen, not computed: `roi` defaults to the middle of the photo, and
    `heatmap_jpeg` to a blob over it drawn as the worker draws heatmaps. Returns the active prediction."""
    roi = roi or (photo.width // 6, photo.height // 6, photo.width - photo.width // 6, photo.height - photo.height // 6)
    analysis = Analysis(
        probability=probability, heatmap=_blob(photo.width, photo.height), roi=roi, roi_source="auto", roi_scored=False
    )
    if heatmap_jpeg is None:
        heatmap_jpeg = render_heatmap(read_photo(photo), analysis)
    prediction = record_prediction(
        photo=photo, model_version=active, analysis=analysis, heatmap_jpeg=heatmap_jpeg, timings_ms={}
    )
    if challenger is not None:
        ShadowPredictionFactory(photo=photo, model_version=challenger, probability=shadow_probability, roi=roi)
    return prediction


def record_outcome(*, case, clinician, outcome, lab_result, result_date, diagnosis=None):
    """The clinician's decision (none while `outcome` is pending: isolation room when suspected,
    the standard waiting room when not), then the lab result and final diagnosis."""
    if outcome != Outcome.PENDING:
        action = Decision.Action.ISOLATION_ROOM if outcome == Outcome.SUSPECTED else Decision.Action.STANDARD
        record_decision(case=case, clinician=clinician, outcome=outcome, action=action)
    record_ground_truth(
        case=case, entered_by=clinician, result=lab_result, result_date=result_date, diagnosis=diagnosis
    )


def _demo_challenger(active):
    """The shipped checkpoint registered a second time as the challenger, with a higher threshold,
    so the comparison page and shadow runs on new photos have something to show."""
    challenger = ModelVersionFactory(
        version=CHALLENGER_VERSION,
        architecture=active.architecture,
        checkpoint_path=active.checkpoint_path,
        threshold=min(0.9, active.threshold * 1.5),
        operating_point="demo only",
        metadata={},
    )
    if versions.challenger_model_version() is None:
        versions.make_challenger(challenger)
    return challenger


def _case(rng, site, starts_at, patient, clinician, active, challenger):
    """One invented past case; the draws from `rng` keep their order, so the history is the same each time."""
    mpox = bool(rng.random() < MPOX_SHARE)
    body_site = Photo.BodySite.GENITAL if rng.random() < (0.7 if mpox else 0.4) else Photo.BodySite.TRUNK
    consent_research = bool(rng.random() < 0.6)
    questionnaire = _questionnaire(rng, mpox, starts_at.date(), body_site)
    case, photo = past_visit(
        patient=patient,
        clinic=site,
        starts_at=starts_at,
        photo_file=_synthetic_photo(rng, mpox),
        body_site=body_site,
        consent_research=consent_research,
        questionnaire=questionnaire,
    )
    score = float(rng.beta(4, 2.5) if mpox else rng.beta(2, 5))
    shadow = float(rng.beta(4.5, 2.2) if mpox else rng.beta(1.8, 5))
    record_scores(photo=photo, active=active, probability=score, challenger=challenger, shadow_probability=shadow)
    outcome = Outcome.PENDING
    if rng.random() < 0.9:
        outcome = Outcome.SUSPECTED if rng.random() < (0.9 if mpox else 0.2) else Outcome.NOT_SUSPECTED
    tested = rng.random() < 0.85
    record_outcome(
        case=case,
        clinician=clinician,
        outcome=outcome,
        lab_result=(LabResult.Result.POSITIVE if mpox else LabResult.Result.NEGATIVE)
        if tested
        else LabResult.Result.NOT_TESTED,
        result_date=min(starts_at.date() + timedelta(days=3), timezone.localdate()) if tested else None,
        diagnosis=FinalDiagnosis.Diagnosis.MPOX if mpox else str(rng.choice(OTHER_DIAGNOSES)),
    )


# Invented answer frequencies (mpox, other), loosely after published case series: enough for the
# history model to find contact, fever and swollen glands informative, vaccination protective.
ANSWER_SHARES = {
    "fever": ({"yes": 0.6, "no": 0.3, "unsure": 0.1}, {"yes": 0.15, "no": 0.75, "unsure": 0.1}),
    "swollen_lymph_nodes": ({"yes": 0.55, "no": 0.35, "unsure": 0.1}, {"yes": 0.15, "no": 0.75, "unsure": 0.1}),
    "close_contact": ({"yes": 0.5, "no": 0.3, "unsure": 0.2}, {"yes": 0.05, "no": 0.8, "unsure": 0.15}),
    "lesion_count": (
        {"1": 0.1, "2_5": 0.45, "6_20": 0.35, "over_20": 0.1},
        {"1": 0.45, "2_5": 0.4, "6_20": 0.12, "over_20": 0.03},
    ),
    "pain_itch": (
        {"none": 0.15, "pain": 0.5, "itch": 0.1, "both": 0.25},
        {"none": 0.3, "pain": 0.2, "itch": 0.4, "both": 0.1},
    ),
    "travel": ({"yes": 0.25, "no": 0.75}, {"yes": 0.1, "no": 0.9}),
    "vaccination": (
        {"none": 0.8, "one_dose": 0.1, "two_doses": 0.02, "unsure": 0.08},
        {"none": 0.45, "one_dose": 0.2, "two_doses": 0.25, "unsure": 0.1},
    ),
}
OTHER_LESION_SITES = [
    Photo.BodySite.MOUTH,
    Photo.BodySite.FACE,
    Photo.BodySite.HANDS,
    Photo.BodySite.TRUNK,
    Photo.BodySite.LEGS,
]
TRAVEL_PLACES = ["Spain", "Portugal", "Germany", "Brazil", "Thailand"]


def _questionnaire(rng, mpox, visit_day, body_site):
    """Believable, invented answers whose frequencies differ by outcome (ANSWER_SHARES): mpox cases
    report recent onset, contact, fever and lesions at more sites more often."""
    answers = {"version": QUESTIONNAIRE_VERSION}
    for key, shares in ANSWER_SHARES.items():
        choices = shares[0] if mpox else shares[1]
        answers[key] = str(rng.choice(list(choices), p=list(choices.values())))
    onset_days = int(rng.integers(2, 9) if mpox else rng.integers(1, 31))
    answers["onset_date"] = None if rng.random() < 0.1 else (visit_day - timedelta(days=onset_days)).isoformat()
    extra_sites = rng.binomial(len(OTHER_LESION_SITES), 0.3 if mpox else 0.08)
    sites = {str(body_site), *(str(site) for site in rng.choice(OTHER_LESION_SITES, size=extra_sites, replace=False))}
    answers["lesion_sites"] = sorted(sites)
    answers["travel_where"] = str(rng.choice(TRAVEL_PLACES)) if answers["travel"] == "yes" else ""
    answers["notes"] = "Synthetic demo history."
    return answers


def _synthetic_photo(rng, mpox):
    """Skin-coloured background with a few drawn lesions (rings for the mpox cases)."""
    image = Image.new("RGB", (240, 180), tuple(int(v) for v in rng.integers([170, 120, 90], [230, 180, 150])))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(1, 5))):
        x, y, r = int(rng.integers(50, 190)), int(rng.integers(40, 140)), int(rng.integers(8, 20))
        draw.ellipse(
            (x - r, y - r, x + r, y + r), fill=(150, 60, 60), outline=(240, 230, 200) if mpox else None, width=4
        )
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return SimpleUploadedFile("synthetic.jpg", buffer.getvalue(), "image/jpeg")


def _blob(width, height):
    """A soft round heatmap over the middle of a `width` × `height` photo."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.exp(-(((xx - width / 2) / 50) ** 2 + ((yy - height / 2) / 40) ** 2)).astype(np.float32)
