from django.conf import settings
from django.db import models
from django.db.models import Q


class ModelVersion(models.Model):
    """An installed classifier checkpoint. Exactly one is active at a time."""

    version = models.CharField(max_length=120, unique=True)
    architecture = models.CharField(max_length=60)
    checkpoint_path = models.CharField(max_length=500)
    threshold = models.FloatField()
    operating_point = models.CharField(max_length=200, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    installed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-installed_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model")
        ]

    def __str__(self):
        return self.version + (" (active)" if self.is_active else "")


class Outcome(models.TextChoices):
    """A case's outcome: pending until a clinician records a decision, then the decision's outcome."""

    PENDING = "pending", "Awaiting review"
    SUSPECTED = "suspected", "Suspected mpox"
    NOT_SUSPECTED = "not_suspected", "Not suspected"


DECISION_OUTCOMES = [(value, label) for value, label in Outcome.choices if value != Outcome.PENDING]


class Case(models.Model):
    """The clinical unit a clinician decides on: one per appointment.

    Triage knows the appointment only through this relation (booking calls triage, never the
    reverse); booking closes the case when the appointment is cancelled.
    """

    appointment = models.OneToOneField("booking.Appointment", on_delete=models.PROTECT, related_name="case")
    is_open = models.BooleanField(default=True, db_index=True, help_text="Closed when the appointment is cancelled.")
    flagged = models.BooleanField(default=False, db_index=True, help_text="Any photo's latest prediction ≥ its threshold.")
    max_probability = models.FloatField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"Case {self.pk} ({self.appointment.reference})"


def photo_upload_path(photo, filename):
    return f"photos/{photo.case_id}/{filename}"


def heatmap_upload_path(prediction, filename):
    return f"heatmaps/{prediction.photo.case_id}/{filename}"


class RoiSource(models.TextChoices):
    PATIENT = "patient", "Drawn by patient"
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


class Photo(RoiBox):
    class Status(models.TextChoices):
        RECEIVED = "received", "Received"
        ANALYSING = "analysing", "Analysing"
        ANALYSED = "analysed", "Analysed"
        NO_MODEL = "no_model", "Waiting: no model installed"
        REJECTED = "rejected", "Rejected"
        FAILED = "failed", "Failed"

    WAITING_STATUSES = (Status.RECEIVED, Status.ANALYSING, Status.NO_MODEL)
    # The patient is told why (status_detail) only for these.
    PROBLEM_STATUSES = (Status.REJECTED, Status.FAILED)

    class BodySite(models.TextChoices):
        GENITAL = "genital", "Genital area"
        PERIANAL = "perianal", "Perianal area"
        MOUTH = "mouth", "Mouth or lips"
        FACE = "face", "Face"
        HANDS = "hands", "Hands or arms"
        TRUNK = "trunk", "Chest, back or abdomen"
        LEGS = "legs", "Legs or feet"
        OTHER = "other", "Somewhere else"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="photos")
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body_site = models.CharField(max_length=16, choices=BodySite.choices)
    image = models.FileField(upload_to=photo_upload_path, help_text="Normalised JPEG: orientation applied, metadata stripped.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    sha256 = models.CharField(max_length=64)
    roi_source = models.CharField(max_length=16, choices=RoiSource.choices, default=RoiSource.NONE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RECEIVED, db_index=True)
    status_detail = models.CharField(max_length=300, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
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
        """What the patient is told beside the status: the reason, for a photo to take again."""
        return self.status_detail if self.status in self.PROBLEM_STATUSES else ""


class Prediction(RoiBox):
    """One analysis of one photo by one model version. Never edited: a re-run adds a new row."""

    photo = models.ForeignKey(Photo, on_delete=models.PROTECT, related_name="predictions")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    probability = models.FloatField()
    threshold = models.FloatField()
    flagged = models.BooleanField()
    roi_source = models.CharField(max_length=16, choices=RoiSource.choices)
    heatmap = models.FileField(upload_to=heatmap_upload_path)
    timings_ms = models.JSONField(default=dict)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+",
        help_text="Clinician who asked for a re-run; empty for the analysis at upload.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        get_latest_by = ["created_at", "id"]

    def __str__(self):
        return f"{self.probability:.2f} by {self.model_version.version} on photo {self.photo_id}"


class Decision(models.Model):
    class Action(models.TextChoices):
        ISOLATION_ROOM = "isolation_room", "Isolation room, PPE-ready staff"
        TELEHEALTH = "telehealth", "Telehealth appointment"
        STANDARD = "standard", "Standard waiting room"

    case = models.ForeignKey(Case, on_delete=models.PROTECT, related_name="decisions")
    clinician = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    outcome = models.CharField(max_length=16, choices=DECISION_OUTCOMES)
    action = models.CharField(max_length=16, choices=Action.choices)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.get_outcome_display()} for case {self.case_id}"


class AuditEvent(models.Model):
    """Who did or saw what, when. Written for every access to patient photos and staff case views."""

    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=60)
    allowed = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type}:{self.object_id}"
