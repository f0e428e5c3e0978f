from datetime import timedelta

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils import timezone



class ModelVersion(models.Model):
    """An installed classifier checkpoint. Exactly one is active at a time; at most one is the
    challenger, which runs in shadow on every new photo until it is promoted or retired."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (flags cases)"
        CHALLENGER = "challenger", "Challenger (shadow only)"
        RETIRED = "retired", "Retired (not run)"

    version = models.CharField(max_length=120, unique=True)
    architecture = models.CharField(max_length=60)
    checkpoint_path = models.CharField(max_length=500)
    threshold = models.FloatField()
    operating_point = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    is_challenger = models.BooleanField(default=False, help_text="Runs in shadow: predictions stored, never shown or used to flag.")
    installed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-installed_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model"),
            models.UniqueConstraint(fields=["is_challenger"], condition=Q(is_challenger=True), name="one_challenger_model"),
            models.CheckConstraint(condition=~Q(is_active=True, is_challenger=True), name="active_is_not_challenger"),
        ]

    def __str__(self):
        return self.version + ("" if self.status == self.Status.RETIRED else f" ({self.status})")

    @property
    def status(self):
        if self.is_active:
            return self.Status.ACTIVE
        return self.Status.CHALLENGER if self.is_challenger else self.Status.RETIRED

    @property
    def operating_sensitivity(self):
        """The sensitivity the model card promises at the threshold (cross-validated mean), or None."""
        try:
            return float(self.metadata["cv_metrics"]["at_threshold"]["sensitivity"]["mean"])
        except (KeyError, TypeError, ValueError):
            return None


class HistoryModel(models.Model):
    """A fitted history + image model: logistic regression on an image model's case score (log-odds)
    and the questionnaire answers (`triage.performance.HISTORY_FEATURES`), kept as a version.

    It is measured against that image score alone on lab-confirmed cases it was not fitted on, and
    sets the case flag only once promoted by the challenger's rule; at most one is active, and only
    while its image model is (promoting another image model retires it)."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active (its combined score flags cases)"
        CANDIDATE = "candidate", "Candidate (measured, not flagging)"
        RETIRED = "retired", "Retired (its image model is no longer active)"

    version = models.CharField(max_length=120, unique=True)
    image_model = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="history_models")
    features = models.JSONField(help_text="Feature names, in the order of the coefficients.")
    coefficients = models.JSONField(help_text="Log-odds per unit of each feature.")
    intercept = models.FloatField()
    threshold = models.FloatField(
        help_text="On the combined probability: the highest that flags, out of fold, as many lab-positive cases "
                  "as the image model did at its threshold."
    )
    fitted_cases = models.PositiveIntegerField()
    fitted_positives = models.PositiveIntegerField()
    fitted_case_ids = models.JSONField(default=list, help_text="Cases it was fitted on: left out of its comparison.")
    oof_auc = models.FloatField(null=True, blank=True, help_text="Out-of-fold AUC on the cases it was fitted on.")
    fitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    fitted_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=False)

    class Meta:
        ordering = ["-fitted_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_history_model"),
        ]

    def __str__(self):
        return f"{self.version} ({self.status})"

    @property
    def status(self):
        if self.is_active:
            return self.Status.ACTIVE
        return self.Status.CANDIDATE if self.image_model.is_active else self.Status.RETIRED


class ModelPromotion(models.Model):
    """Who made which version the active model, replacing which, why, and on what evidence. A
    history + image model's promotion names it (`history_model`) and the image model it builds on."""

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="promotions")
    replaced = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    history_model = models.ForeignKey(HistoryModel, null=True, blank=True, on_delete=models.PROTECT, related_name="promotions")
    replaced_history_model = models.ForeignKey(HistoryModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    promoted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    evidence = models.JSONField(default=dict, help_text="The comparison figures the promotion was allowed on.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        promoted = self.history_model or self.model_version
        return f"{promoted.version} promoted {self.created_at:%Y-%m-%d %H:%M}"


class Outcome(models.TextChoices):
    """A case's outcome: pending until a clinician records a decision, then the decision's outcome.

    RETAKE: the clinician asked the patient for a new photo; the patient's next upload puts the case
    back to PENDING, so it returns to the queue.
    """

    PENDING = "pending", "Awaiting review"
    SUSPECTED = "suspected", "Suspected mpox"
    NOT_SUSPECTED = "not_suspected", "Not suspected"
    RETAKE = "retake", "New photo requested"


DECISION_OUTCOMES = [(value, label) for value, label in Outcome.choices if value != Outcome.PENDING]

# The path from a case to its clinic site, for queries (one place, so booking can reshape slots).
CASE_CLINIC = "appointment__slot__clinic"


# A photo's outcome. One rule (`photo_outcome`): a photo the model cannot judge is never suspected,
# whatever its score. The reason codes come from `ml` (ml/assessment.py); unknown codes get a
# generic text.
class PhotoOutcome(models.TextChoices):
    SUSPECTED = "suspected", "Suspected mpox"
    NOT_SUSPECTED = "not_suspected", "Not suspected"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


def photo_outcome(*, probability, threshold, assessable):
    if not assessable:
        return PhotoOutcome.NOT_ASSESSABLE
    return PhotoOutcome.SUSPECTED if probability >= threshold else PhotoOutcome.NOT_SUSPECTED


class PhotoReason(models.TextChoices):
    """Why a photo must be taken again (the model could not judge it) or why its analysis failed.

    Stored as a code (`Photo.status_reason`) and put into words only when shown (`reason_for_patient`,
    `reason_for_clinician`), so each reader gets their own language. The first six are the
    assessability codes of `ml` (ml/assessment.py); a code `ml` adds later reads as NOT_ASSESSABLE
    until it gets words here.
    """

    TOO_DARK = "too_dark", "Too dark"
    TOO_BRIGHT = "too_bright", "Too bright"
    BLANK = "blank", "Blank"
    BLURRED = "blurred", "Blurred"
    NOT_SKIN = "not_skin", "Not skin"
    NO_LESION = "no_lesion", "No lesion recognised"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"
    TIMED_OUT = "timed_out", "Analysis timed out"
    FAILED = "failed", "Analysis failed"

    @classmethod
    def from_model(cls, code):
        """The reason for an assessability code from `ml`."""
        known = code in cls.values and code not in (cls.TIMED_OUT, cls.FAILED)
        return cls(code) if known else cls.NOT_ASSESSABLE


# reason -> (what the patient is asked to do, in their language; what the clinician is told)
REASON_TEXTS = {
    PhotoReason.TOO_DARK: (
        _("The photo is too dark to judge. Please take it again in good light."),
        "Too dark: the lesion crop is darker than almost every training photo.",
    ),
    PhotoReason.TOO_BRIGHT: (
        _("The photo is too bright (overexposed) to judge. Please take it again without flash glare."),
        "Overexposed: the lesion crop is brighter than almost every training photo.",
    ),
    PhotoReason.BLANK: (
        _("The photo looks blank. Please take it again with the skin area in view."),
        "Blank: almost no detail in the lesion crop.",
    ),
    PhotoReason.BLURRED: (
        _("The photo is blurred. Please hold the phone steady, let it focus on the spot, and take it again."),
        "Blurred: the lesion crop has less fine detail than almost every training photo.",
    ),
    PhotoReason.NOT_SKIN: (
        _("We could not see skin in the photo. Please photograph the skin area with the spot, close up."),
        "Not a skin photo: too little skin-coloured area in the crop.",
    ),
    PhotoReason.NO_LESION: (
        _("We could not find a skin spot or sore in the photo. Please take it again close up, with the "
          "spot in the middle, or mark the spot on the photo."),
        "No lesion recognised: the crop is unlike the lesion photos the model learned from "
        "(healthy skin, another object, or a lesion type it has not seen).",
    ),
    PhotoReason.NOT_ASSESSABLE: (
        _("We could not judge this photo. Please take it again close up, in good light, with the spot in the middle."),
        "The model could not judge this photo.",
    ),
    PhotoReason.TIMED_OUT: (
        _("We could not check this photo in time. Please send it again; the clinic has been told."),
        "The analysis took too long; re-run it from the case page.",
    ),
    PhotoReason.FAILED: (
        _("Something went wrong while checking this photo. Please send it again; the clinic has been told."),
        "The analysis failed; re-run it from the case page once the cause is fixed.",
    ),
}


def reason_for_patient(reason):
    """What the patient is asked to do, in the active language."""
    return str(REASON_TEXTS[PhotoReason(reason)][0])


def reason_for_clinician(reason, detail=""):
    """What staff are told, with the technical detail of a failure when there is one."""
    text = REASON_TEXTS[PhotoReason(reason)][1]
    return f"{text} ({detail})" if detail else text


class Case(models.Model):
    """The clinical unit a clinician decides on: one per appointment.

    Triage knows the appointment only through this relation (booking calls triage, never the
    reverse); booking closes the case when the appointment is cancelled.
    """

    appointment = models.OneToOneField("booking.Appointment", on_delete=models.PROTECT, related_name="case")
    is_open = models.BooleanField(default=True, db_index=True, help_text="Closed when the appointment is cancelled.")
    flagged = models.BooleanField(default=False, db_index=True, help_text="Any photo's latest prediction is suspected mpox.")
    max_probability = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When the case last entered the queue: first photo, or a retake."
    )
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The clinician working on the case, until claimed_until.",
    )
    claimed_until = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(
        null=True, blank=True, help_text="When on-duty staff were told it is still undecided close to the appointment."
    )
    history_model = models.ForeignKey(
        "HistoryModel", null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="The history + image model whose combined score set the flag; empty: the image score alone did.",
    )
    history_score = models.FloatField(null=True, blank=True, help_text="That model's combined probability.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [
            ("review_cases", "Can see the triage queue and case pages"),
            ("decide_cases", "Can claim cases and record or countersign decisions"),
            ("export_decisions", "Can download a day's decisions as CSV"),
            ("see_all_sites", "Sees the cases of every clinic site"),
        ]

    def __str__(self):
        return f"Case {self.pk} ({self.appointment.reference})"

    @property
    def clinic(self):
        return self.appointment.slot.clinic

    @property
    def clinic_id(self):
        return self.appointment.slot.clinic_id

    @property
    def claim_holder(self):
        """The clinician whose claim on the case is still running, or None."""
        if self.claimed_by_id and self.claimed_until and self.claimed_until > timezone.now():
            return self.claimed_by
        return None


class SiteMembership(models.Model):
    """A staff member works at a clinic site; clinicians see only their sites' cases.

    On-duty members get the emails about flagged and escalated cases of that site.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="site_memberships")
    clinic = models.ForeignKey("booking.Clinic", on_delete=models.CASCADE, related_name="staff_memberships")
    on_duty = models.BooleanField(default=False, help_text="Receives flagged-case and escalation emails for this site.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "clinic"], name="one_membership_per_site")]

    def __str__(self):
        return f"{self.user} at {self.clinic}" + (" (on duty)" if self.on_duty else "")


def photo_upload_path(photo, filename):
    return f"photos/{photo.case_id}/{filename}"


def heatmap_upload_path(prediction, filename):
    return f"heatmaps/{prediction.photo.case_id}/{filename}"


class RoiSource(models.TextChoices):
    PATIENT = "patient", "Box drawn by patient"
    PATIENT_TAP = "patient_tap", "Tapped by patient"
    CLINICIAN = "clinician", "Drawn by clinician"
    AUTO = "auto", "Automatic"
    NONE = "none", "Whole photo"


class RoiBox(models.Model):
    """A lesion box (x0, y0, x1, y1) in upright full-photo pixels; all four empty = none."""

    roi_x0 = models.PositiveIntegerField(null=True, blank=True)
    roi_y0 = models.PositiveIntegerField(null=True, blank=True)
    roi_x1 = models.PositiveIntegerField(null=True, blank=True)
    roi_y1 = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def roi(self):
        if self.roi_x0 is None:
            return None
        return (self.roi_x0, self.roi_y0, self.roi_x1, self.roi_y1)

    @roi.setter
    def roi(self, box):
        self.roi_x0, self.roi_y0, self.roi_x1, self.roi_y1 = box if box is not None else (None, None, None, None)


class FileDeletionReason(models.TextChoices):
    RETENTION = "retention", "Retention period ended"
    PATIENT_REQUEST = "patient_request", "Patient asked for deletion"


class Photo(RoiBox):
    class Status(models.TextChoices):
        RECEIVED = "received", _("Received")
        ANALYSING = "analysing", _("Analysing")
        ANALYSED = "analysed", _("Analysed")
        NO_MODEL = "no_model", _("Waiting: no model installed")
        # Not assessable by the model: the patient is asked for a retake; status_reason says why.
        REJECTED = "rejected", _("Please take it again")
        FAILED = "failed", _("Failed")

    WAITING_STATUSES = (Status.RECEIVED, Status.ANALYSING, Status.NO_MODEL)
    # The patient is told why (status_reason) only for these.
    PROBLEM_STATUSES = (Status.REJECTED, Status.FAILED)

    class BodySite(models.TextChoices):  # patients see these labels (translated)
        GENITAL = "genital", _("Genital area")
        PERIANAL = "perianal", _("Perianal area")
        MOUTH = "mouth", _("Mouth or lips")
        FACE = "face", _("Face")
        HANDS = "hands", _("Hands or arms")
        TRUNK = "trunk", _("Chest, back or abdomen")
        LEGS = "legs", _("Legs or feet")
        OTHER = "other", _("Somewhere else")

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="photos")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body_site = models.CharField(max_length=16, choices=BodySite.choices)
    image = models.FileField(
        upload_to=photo_upload_path, blank=True,
        help_text="Normalised JPEG: orientation applied, metadata stripped. Empty once the file is deleted.",
    )
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    roi_source = models.CharField(max_length=16, choices=RoiSource.choices, default=RoiSource.NONE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    status_reason = models.CharField(
        max_length=20, choices=PhotoReason.choices, blank=True,
        help_text="Why it must be taken again or why its analysis failed; put into words when shown.",
    )
    status_detail = models.CharField(max_length=300, blank=True, help_text="Staff only: the technical cause of a failed analysis.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Analysis runs started; a run records its result only if no later one began.")
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When its analysis was last handed to the broker; empty: not queued.")
    analysis_started_at = models.DateTimeField(null=True, blank=True, help_text="When the latest analysis run began (its lease).")
    analysis_worker = models.CharField(max_length=200, blank=True, help_text="Celery worker of the latest run.")
    files_deleted_at = models.DateTimeField(
        null=True, blank=True, help_text="When the photo and its heatmaps were deleted; the row and its scores stay.",
    )
    files_deleted_reason = models.CharField(max_length=20, choices=FileDeletionReason.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"Photo {self.pk} of case {self.case_id}"

    @property
    def is_settled(self):
        """No further status change will come without someone acting."""
        return self.status not in self.WAITING_STATUSES

    @property
    def patient_message(self):
        """What the patient is told beside the status, in the active language: the reason, for a photo
        to take again."""
        return reason_for_patient(self.status_reason) if self._shows_reason else ""

    @property
    def staff_message(self):
        """What staff are told of a photo to take again or a failed analysis."""
        return reason_for_clinician(self.status_reason, self.status_detail) if self._shows_reason else ""

    @property
    def _shows_reason(self):
        return self.status in self.PROBLEM_STATUSES and bool(self.status_reason)


class CountingPredictionManager(models.Manager):
    """Only the active model's predictions: what flags cases and what staff and patients see.
    Shadow predictions of a challenger are reached through `Prediction.all_roles` alone."""

    def get_queryset(self):
        return super().get_queryset().filter(role=Prediction.Role.ACTIVE)


# Names of the differential's classes (the model's codes) for the staff pages.
DIFFERENTIAL_NAMES = {
    "mpox": _("Mpox"), "chickenpox_or_measles": _("Chickenpox or measles"), "genital_herpes": _("Genital herpes"),
    "genital_warts": _("Genital warts"), "syphilis": _("Syphilis"), "healthy_skin": _("Healthy skin"),
}


class Prediction(RoiBox):
    """One analysis of one photo by one model version. Never edited: a re-run adds a new row."""

    class Role(models.TextChoices):
        ACTIVE = "active", "Active model"
        CHALLENGER = "challenger", "Challenger (shadow)"

    photo = models.ForeignKey(Photo, on_delete=models.PROTECT, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    probability = models.FloatField()
    threshold = models.FloatField()
    assessable = models.BooleanField(default=True)
    reason = models.CharField(max_length=40, blank=True, help_text="Why the model could not judge the photo (a code from ml).")
    outcome = models.CharField(max_length=16, choices=PhotoOutcome.choices, editable=False)
    flagged = models.BooleanField(editable=False, help_text="Outcome is suspected mpox.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ACTIVE, db_index=True)
    roi_source = models.CharField(max_length=16, choices=RoiSource.choices)
    heatmap = models.FileField(
        upload_to=heatmap_upload_path, blank=True, help_text="Empty for shadow predictions, and once the file is deleted."
    )
    timings_ms = models.JSONField(default=dict)
    differential = models.JSONField(
        default=dict, blank=True,
        help_text="Decision support: class -> probability over the differential diagnoses (empty for models without one).",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Clinician who asked for a re-run; empty for the analysis at upload.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = CountingPredictionManager()
    all_roles = models.Manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self):
        return f"{self.get_outcome_display()} ({self.probability:.2f}) by {self.model_version.version} on photo {self.photo_id}"

    def top_differential(self, n: int = 3) -> list[tuple[str, float]]:
        """(name, probability) of the ``n`` most likely classes of the differential, most likely first."""
        ranked = sorted(self.differential.items(), key=lambda item: -item[1])[:n]
        return [(DIFFERENTIAL_NAMES.get(code, code.replace("_", " ")), p) for code, p in ranked]

    def save(self, *args, **kwargs):
        # Outcome and flag always follow from score, threshold and assessability (photo_outcome).
        self.outcome = photo_outcome(probability=self.probability, threshold=self.threshold, assessable=self.assessable)
        self.flagged = self.outcome == PhotoOutcome.SUSPECTED
        super().save(*args, **kwargs)

    @property
    def reason_for_clinician(self):
        return "" if self.assessable else reason_for_clinician(PhotoReason.from_model(self.reason))


class Decision(models.Model):
    class Action(models.TextChoices):
        ISOLATION_ROOM = "isolation_room", "Isolation room, PPE-ready staff"
        TELEHEALTH = "telehealth", "Telehealth instead of the visit"
        KEEP_WITH_PPE = "keep_with_ppe", "Keep the appointment, staff in PPE"
        STANDARD = "standard", "Standard waiting room"

    # The only consistent outcome + action pairs (the service and the form both check them here).
    ACTIONS_FOR_OUTCOME = {
        Outcome.SUSPECTED: (Action.ISOLATION_ROOM, Action.TELEHEALTH, Action.KEEP_WITH_PPE),
        Outcome.NOT_SUSPECTED: (Action.STANDARD,),
        Outcome.RETAKE: (),
    }
    # What the patient is told (in their language) when the clinician writes no instructions of their own.
    DEFAULT_PATIENT_MESSAGES = {
        Action.ISOLATION_ROOM: _("Please come to your appointment as booked. Tell reception your booking reference "
                                 "on arrival: you will be seen in a separate room."),
        Action.TELEHEALTH: _("Please do not come to the clinic: your appointment will be a video or phone call "
                             "at the booked time."),
        Action.KEEP_WITH_PPE: _("Please come to your appointment as booked and cover any sores with clothing."),
        Action.STANDARD: _("Please come to your appointment as booked."),
    }

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=16, choices=DECISION_OUTCOMES)
    action = models.CharField(max_length=16, choices=Action.choices, blank=True, help_text="Empty for a retake request.")
    note = models.TextField(blank=True, help_text="For staff only.")
    patient_instructions = models.TextField(
        blank=True, help_text="What the patient is told; for a retake request, why a new photo is needed."
    )
    countersigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    countersigned_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_outcome_display()} for case {self.case_id}"

    @classmethod
    def problems(cls, *, outcome, action, patient_instructions):
        """{field: message} for an inconsistent decision, empty when it may be recorded. The one
        check behind both the decision form and `record_decision`."""
        if outcome not in cls.ACTIONS_FOR_OUTCOME:
            return {"outcome": "Choose an outcome."}
        problems = {}
        allowed = cls.ACTIONS_FOR_OUTCOME[outcome]
        if allowed and action not in allowed:
            labels = ", ".join(cls.Action(value).label for value in allowed)
            problems["action"] = f"With “{Outcome(outcome).label}”, choose one of: {labels}."
        elif not allowed and action:
            problems["action"] = f"“{Outcome(outcome).label}” takes no action: clear the action."
        if outcome == Outcome.RETAKE and not patient_instructions.strip():
            problems["patient_instructions"] = "Tell the patient why a new photo is needed."
        return problems

    @property
    def patient_message(self):
        """What the patient is told about this decision (never a score): the clinician's words, else the
        standard text for the action in the active language."""
        return self.patient_instructions or str(self.DEFAULT_PATIENT_MESSAGES.get(self.action, ""))


class LabResult(models.Model):
    """A laboratory mpox PCR result for a case. Never edited: a correction adds a row, and the
    newest row is the current result (`current_lab_results`)."""

    class Result(models.TextChoices):
        POSITIVE = "positive", "Mpox PCR positive"
        NEGATIVE = "negative", "Mpox PCR negative"
        NOT_TESTED = "not_tested", "Not tested"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="lab_results")
    result = models.CharField(max_length=16, choices=Result.choices)
    result_date = models.DateField(null=True, blank=True, help_text="Date of the result; empty when not tested.")
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, help_text="Why a correction was made.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_result_display()} for case {self.case_id}"


class FinalDiagnosis(models.Model):
    """The final clinical diagnosis of a case; corrections add rows, the newest is current."""

    class Diagnosis(models.TextChoices):
        MPOX = "mpox", "Mpox"
        HERPES = "herpes", "Herpes"
        SYPHILIS = "syphilis", "Syphilis"
        MOLLUSCUM = "molluscum", "Molluscum contagiosum"
        WARTS = "warts", "Warts"
        FOLLICULITIS = "folliculitis", "Folliculitis / dermatosis"
        HEALTHY = "healthy", "Healthy skin"
        OTHER = "other", "Other"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="final_diagnoses")
    diagnosis = models.CharField(max_length=16, choices=Diagnosis.choices)
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    note = models.TextField(blank=True, help_text="Why a correction was made.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "final diagnoses"

    def __str__(self):
        return f"{self.get_diagnosis_display()} for case {self.case_id}"


def is_mpox(lab_result, diagnosis):
    """The training label of a case: the lab result when it is positive or negative, else the final
    diagnosis; None when neither says, or when a negative PCR contradicts a diagnosis of mpox."""
    if lab_result in (LabResult.Result.POSITIVE, LabResult.Result.NEGATIVE):
        positive = lab_result == LabResult.Result.POSITIVE
        if not positive and diagnosis == FinalDiagnosis.Diagnosis.MPOX:
            return None
        return positive
    if diagnosis:
        return diagnosis == FinalDiagnosis.Diagnosis.MPOX
    return None


class AuditEvent(models.Model):
    """Who did or saw what, when: every read of patient data and every denial. Append-only."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=60)
    case_reference = models.CharField(
        max_length=40, blank=True, db_index=True, help_text="Booking reference of the case concerned (or asked for)."
    )
    allowed = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type}:{self.object_id}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of one Celery worker (its main process), written every
    WORKER_HEARTBEAT_SECONDS; what admins look at to see which workers are up."""

    hostname = models.CharField(max_length=200, unique=True)
    queues = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["hostname"]

    def __str__(self):
        return self.hostname

    @property
    def state(self):
        """"stopped" (warm shutdown), "stale" (silent for three heartbeat periods) or "up"."""
        if self.stopped_at is not None:
            return "stopped"
        if self.last_seen_at < timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS):
            return "stale"
        return "up"
