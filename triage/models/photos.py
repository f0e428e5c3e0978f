"""Photos, their lesion boxes and the predictions made on them."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from triage.models.cases import Case
from triage.models.reasons import PhotoOutcome, PhotoReason, photo_outcome, reason_for_clinician, reason_for_patient


def photo_upload_path(photo, filename):
    return f"photos/{photo.case_id}/{filename}"


def original_upload_path(photo, filename):
    return f"originals/{photo.case_id}/{filename}"


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
        # A problem photo no longer owed (`photo_status.settle_problem_photos`): the patient sent a newer
        # photo of the same body site, or a clinician takes it as it is (the case was decided, or a
        # retake could not be judged either). status_reason keeps why it was a problem.
        REPLACED = "replaced", _("Replaced by a newer photo")
        AS_IS = "as_is", _("No new photo needed")

    WAITING_STATUSES = (Status.RECEIVED, Status.ANALYSING, Status.NO_MODEL)
    # Still owed by the patient: asked to take it again, or to send it again. The patient is told why
    # (status_reason) only for these.
    PROBLEM_STATUSES = (Status.REJECTED, Status.FAILED)
    # Done with: never analysed again by a redelivered task.
    FINISHED_STATUSES = (Status.ANALYSED, Status.REJECTED, Status.REPLACED, Status.AS_IS)

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
    original = models.FileField(
        upload_to=original_upload_path,
        blank=True,
        help_text="The file as uploaded, metadata and all: kept only until the worker has made `image` "
        "from it, never shown or sent anywhere.",
    )
    image = models.FileField(
        upload_to=photo_upload_path,
        blank=True,
        help_text="Normalised JPEG: orientation applied, metadata stripped. Empty until the worker has "
        "made it from `original`, and once the file is deleted.",
    )
    width = models.PositiveIntegerField(help_text="Upright pixels, from the upload's header.")
    height = models.PositiveIntegerField(help_text="Upright pixels, from the upload's header.")
    sha256 = models.CharField(max_length=64, blank=True, help_text="Of `image`; empty until it is made.")
    roi_source = models.CharField(max_length=16, choices=RoiSource.choices, default=RoiSource.NONE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    status_reason = models.CharField(
        max_length=20,
        choices=PhotoReason.choices,
        blank=True,
        help_text="Why it must be taken again or why its analysis failed; put into words when shown.",
    )
    status_detail = models.CharField(
        max_length=300, blank=True, help_text="Staff only: the technical cause of a failed analysis."
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Analysis runs started; a run records its result only if no later one began."
    )
    queued_at = models.DateTimeField(
        null=True, blank=True, help_text="When its analysis was last handed to the broker; empty: not queued."
    )
    analysis_started_at = models.DateTimeField(
        null=True, blank=True, help_text="When the latest analysis run began (its lease)."
    )
    analysis_worker = models.CharField(max_length=200, blank=True, help_text="Celery worker of the latest run.")
    files_deleted_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the photo and its heatmaps were deleted; the row and its scores stay.",
    )
    files_deleted_reason = models.CharField(max_length=20, choices=FileDeletionReason.choices, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"Photo {self.pk} of case {self.case_id}"

    @property
    def audit_reference(self):
        return self.case.audit_reference

    @property
    def is_viewable(self):
        """Its normalised JPEG exists: until the worker has made it (seconds after upload) there is
        nothing to show, and the original is never shown."""
        return bool(self.image.name)

    @property
    def is_settled(self):
        """No further status change will come without someone acting."""
        return self.status not in self.WAITING_STATUSES

    @property
    def needs_retake(self):
        """The patient still owes a new photo for this one."""
        return self.status in self.PROBLEM_STATUSES

    @property
    def patient_message(self):
        """What the patient is told beside the status, in the active language: the reason, for a photo
        to take again; that none is needed, for one a clinician takes as it is."""
        if self.status == self.Status.AS_IS:
            return str(AS_IS_MESSAGE)
        return reason_for_patient(self.status_reason) if self._shows_reason else ""

    @property
    def staff_message(self):
        """What staff are told of a photo to take again or a failed analysis."""
        return reason_for_clinician(self.status_reason, self.status_detail) if self._shows_reason else ""

    @property
    def _shows_reason(self):
        return self.status in self.PROBLEM_STATUSES and bool(self.status_reason)


AS_IS_MESSAGE = _(
    "We could not check this photo automatically, so a clinician will look at your photos as they "
    "are. You do not need to send it again."
)


class PredictionQuerySet(models.QuerySet):
    def active(self):
        """The active model's predictions: what flags cases and what staff and patients see (a
        challenger's shadow predictions are left out)."""
        return self.filter(role=Prediction.Role.ACTIVE)


# Names of the differential's classes (the model's codes) for the staff pages.
DIFFERENTIAL_NAMES = {
    "mpox": _("Mpox"),
    "chickenpox_or_measles": _("Chickenpox or measles"),
    "genital_herpes": _("Genital herpes"),
    "genital_warts": _("Genital warts"),
    "syphilis": _("Syphilis"),
    "healthy_skin": _("Healthy skin"),
}


class Prediction(RoiBox):
    """One analysis of one photo by one model version. Never edited: a re-run adds a new row."""

    class Role(models.TextChoices):
        ACTIVE = "active", "Active model"
        CHALLENGER = "challenger", "Challenger (shadow)"

    photo = models.ForeignKey(Photo, on_delete=models.PROTECT, related_name="predictions")
    model_version = models.ForeignKey("registry.ModelVersion", on_delete=models.PROTECT, related_name="predictions")
    probability = models.FloatField()
    threshold = models.FloatField()
    assessable = models.BooleanField(default=True)
    reason = models.CharField(
        max_length=40, blank=True, help_text="Why the model could not judge the photo (a code from ml)."
    )
    outcome = models.CharField(max_length=16, choices=PhotoOutcome.choices, editable=False)
    flagged = models.BooleanField(editable=False, help_text="Outcome is suspected mpox.")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.ACTIVE, db_index=True)
    roi_source = models.CharField(max_length=16, choices=RoiSource.choices)
    roi_scored = models.BooleanField(
        default=True,
        help_text="False: the model found the box and shows it, but scored the whole photo.",
    )
    heatmap = models.FileField(
        upload_to=heatmap_upload_path,
        blank=True,
        help_text="Empty for shadow predictions, and once the file is deleted.",
    )
    timings_ms = models.JSONField(default=dict)
    differential = models.JSONField(
        default=dict,
        blank=True,
        help_text="Decision support: class -> probability over the differential diagnoses (empty for models without one).",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Clinician who asked for a re-run; empty for the analysis at upload.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PredictionQuerySet.as_manager()  # every role: ask for `.active()` where only the active model counts

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self):
        return f"{self.get_outcome_display()} ({self.probability:.2f}) by {self.model_version.version} on photo {self.photo_id}"

    @property
    def audit_reference(self):
        return self.photo.audit_reference

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
