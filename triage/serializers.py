"""JSON shapes of triage's API (`triage.api`) and of the patient's photo-status poll.

Three audiences: patients (photo status, never a score), integrations acting for a clinic (photo
status, the case's outcome and decision) and clinicians (everything, scores included).
"""

from django.urls import reverse
from rest_framework import serializers

from triage.images import BOX_FIELDS, TAP_FIELDS
from triage.models import (
    Case,
    Decision,
    FinalDiagnosis,
    LabResult,
    Photo,
    PhotoReason,
    Prediction,
)

STATUS_FIELDS = ["id", "status", "label", "reason", "detail", "settled", "retake_needed"]


class PatientPhotoStatusSerializer(serializers.ModelSerializer):
    """What a patient may know about a photo: its status, and why when it needs retaking. Never a score."""

    label = serializers.CharField(source="get_status_display")
    reason = serializers.ChoiceField(
        source="status_reason",
        choices=PhotoReason.choices,
        allow_blank=True,
        read_only=True,
        help_text="Why the photo must be taken again or could not be analysed (a stable code); empty otherwise.",
    )
    detail = serializers.CharField(
        source="patient_message",
        help_text="The reason in words for the patient, in the request's language.",
    )
    settled = serializers.BooleanField(source="is_settled")
    retake_needed = serializers.BooleanField(
        source="needs_retake",
        help_text="The patient should take this photo again (`detail` says why).",
    )
    image_url = serializers.SerializerMethodField(
        help_text="Where the patient's own photo can be seen once it has been prepared (its hidden details "
        "removed); null until then, and once its files are deleted."
    )

    class Meta:
        model = Photo
        fields = [*STATUS_FIELDS, "image_url"]

    def get_image_url(self, photo) -> str | None:
        return reverse("photo-image", args=[photo.pk]) if photo.is_viewable else None


class PhotoStatusSerializer(PatientPhotoStatusSerializer):
    """A photo's status for the API (patients and integrations): no score, no image."""

    assessable = serializers.SerializerMethodField()

    class Meta(PatientPhotoStatusSerializer.Meta):
        fields = [*STATUS_FIELDS, "assessable", "body_site", "created_at"]

    def get_assessable(self, photo) -> bool | None:
        """Whether the model could judge the photo (False: a retake was asked for, `detail` says why);
        null until it has been analysed."""
        latest = photo.predictions.active().first()
        return None if latest is None else latest.assessable


class PhotoUploadSerializer(serializers.Serializer):
    """One photo (multipart), optionally with the lesion marked in upright-photo pixels: a box (all four
    `roi_*`) or a tap on the lesion (`tap_x`, `tap_y`), which becomes a box sized from the photo as on
    the patient's upload page. Whether the mark lies inside the photo is checked against the photo."""

    photo = serializers.FileField(help_text="JPEG or PNG; checked by its content, metadata stripped.")
    body_site = serializers.ChoiceField(choices=Photo.BodySite.choices)
    roi_x0 = serializers.IntegerField(required=False, min_value=0)
    roi_y0 = serializers.IntegerField(required=False, min_value=0)
    roi_x1 = serializers.IntegerField(required=False, min_value=0)
    roi_y1 = serializers.IntegerField(required=False, min_value=0)
    tap_x = serializers.IntegerField(required=False, min_value=0, help_text="Where the lesion was tapped (with tap_y).")
    tap_y = serializers.IntegerField(required=False, min_value=0)

    MARKS = {"roi": BOX_FIELDS, "tap": TAP_FIELDS}

    def validate(self, attrs):
        """Each mark becomes one tuple (`roi`, `tap`) or None; the upload service refuses both at once."""
        for mark, names in self.MARKS.items():
            given = [name for name in names if name in attrs]
            if given and len(given) != len(names):
                raise serializers.ValidationError(f"Give all of {', '.join(names)} or none of them.")
            attrs[mark] = tuple(attrs.pop(name) for name in names) if given else None
        return attrs


class DecisionSummarySerializer(serializers.ModelSerializer):
    """A decision as the clinic's systems see it: outcome and where the patient waits (no clinician's note)."""

    decided_at = serializers.DateTimeField(source="created_at")

    class Meta:
        model = Decision
        fields = ["outcome", "action", "patient_instructions", "decided_at"]


class CaseOutcomeSerializer(serializers.ModelSerializer):
    """A case for an integration: flagged or not, its outcome and the latest decision."""

    decision = serializers.SerializerMethodField()

    class Meta:
        model = Case
        fields = ["id", "is_open", "flagged", "outcome", "decision"]

    def get_decision(self, case) -> DecisionSummarySerializer(allow_null=True):
        decision = next(iter(case.decisions.all()), None)  # newest first (Decision.Meta.ordering); uses a prefetch
        return DecisionSummarySerializer(decision).data if decision is not None else None


class DecisionSerializer(serializers.ModelSerializer):
    clinician = serializers.CharField(source="clinician.get_username", read_only=True)

    class Meta:
        model = Decision
        fields = ["id", "outcome", "action", "note", "patient_instructions", "clinician", "created_at"]
        read_only_fields = ["id", "clinician", "created_at"]


class PredictionSerializer(serializers.ModelSerializer):
    model_version = serializers.CharField(source="model_version.version")
    roi = serializers.ListField(child=serializers.IntegerField(), allow_null=True, min_length=4, max_length=4)
    heatmap_url = serializers.SerializerMethodField()

    class Meta:
        model = Prediction
        fields = [
            "id",
            "probability",
            "threshold",
            "flagged",
            "assessable",
            "reason",
            "outcome",
            "model_version",
            "roi",
            "roi_source",
            "roi_scored",
            "heatmap_url",
            "differential",
            "created_at",
        ]
        extra_kwargs = {
            "differential": {
                "help_text": "Decision support, not a diagnosis: class -> probability over the differential "
                "diagnoses (mpox's entry is the flagging score); empty for models without one."
            }
        }

    def get_heatmap_url(self, prediction) -> str:
        return reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk])


class StaffPhotoSerializer(PhotoStatusSerializer):
    """A photo for a clinician: status, box, the protected image URL and every analysis, newest first."""

    roi = serializers.ListField(child=serializers.IntegerField(), allow_null=True, min_length=4, max_length=4)
    image_url = serializers.SerializerMethodField()
    predictions = PredictionSerializer(source="prediction_history", many=True)

    class Meta(PhotoStatusSerializer.Meta):
        fields = [
            *PhotoStatusSerializer.Meta.fields,
            "width",
            "height",
            "roi",
            "roi_source",
            "image_url",
            "predictions",
        ]

    def get_image_url(self, photo) -> str:
        return reverse("photo-image", args=[photo.pk])


class StaffCaseSerializer(serializers.ModelSerializer):
    """A row of the clinician queue."""

    reference = serializers.CharField(source="appointment.reference")
    clinic = serializers.CharField(source="appointment.clinic.name")
    starts_at = serializers.DateTimeField(source="appointment.starts_at")
    photo_count = serializers.IntegerField()
    photos_analysed = serializers.IntegerField()
    photos_waiting = serializers.IntegerField()
    photos_problem = serializers.IntegerField()

    class Meta:
        model = Case
        fields = [
            "id",
            "reference",
            "clinic",
            "starts_at",
            "flagged",
            "max_probability",
            "outcome",
            "photo_count",
            "photos_analysed",
            "photos_waiting",
            "photos_problem",
        ]


class StaffCaseDetailSerializer(serializers.ModelSerializer):
    reference = serializers.CharField(source="appointment.reference")
    clinic = serializers.CharField(source="appointment.clinic.name")
    starts_at = serializers.DateTimeField(source="appointment.starts_at")
    symptoms = serializers.CharField(source="appointment.symptoms")
    lesion_onset = serializers.DateField(source="appointment.lesion_onset", allow_null=True)
    photos = StaffPhotoSerializer(many=True)
    decisions = DecisionSerializer(many=True)
    probability = serializers.JSONField(
        source="shown_probability",
        read_only=True,
        allow_null=True,
        help_text="Decision support, not a diagnosis: the case's P(mpox) from all its assessable photos "
        "(`value`), at the mpox prevalence `prevalence` (`source`: `clinic` when the clinic stated it in "
        "MPOX_PREVALENCE, `training` for the model's training case mix); null before any photo is scored.",
    )

    class Meta:
        model = Case
        fields = [
            "id",
            "reference",
            "clinic",
            "starts_at",
            "symptoms",
            "lesion_onset",
            "is_open",
            "flagged",
            "probability",
            "max_probability",
            "outcome",
            "photos",
            "decisions",
        ]


class LabResultSerializer(serializers.ModelSerializer):
    entered_by = serializers.CharField(source="entered_by.get_username")

    class Meta:
        model = LabResult
        fields = ["id", "result", "result_date", "note", "entered_by", "created_at"]


class FinalDiagnosisSerializer(serializers.ModelSerializer):
    entered_by = serializers.CharField(source="entered_by.get_username")

    class Meta:
        model = FinalDiagnosis
        fields = ["id", "diagnosis", "note", "entered_by", "created_at"]


class GroundTruthSerializer(serializers.Serializer):
    """A case's lab results and final diagnoses, newest first: the first of each is current, the
    others are the values it corrected (`note` says why)."""

    lab_results = LabResultSerializer(many=True)
    final_diagnoses = FinalDiagnosisSerializer(many=True)


class GroundTruthRequestSerializer(serializers.Serializer):
    """A lab result, a final diagnosis, or both; what is left out stays as recorded."""

    result = serializers.ChoiceField(choices=LabResult.Result.choices, allow_null=True, default=None)
    result_date = serializers.DateField(
        allow_null=True,
        default=None,
        help_text="Needed with a positive or negative result.",
    )
    diagnosis = serializers.ChoiceField(
        choices=FinalDiagnosis.Diagnosis.choices,
        allow_null=True,
        default=None,
    )
    note = serializers.CharField(
        allow_blank=True,
        max_length=2000,
        default="",
        help_text="Why; needed when this changes a recorded value.",
    )
    confirm_contradiction = serializers.BooleanField(
        default=False,
        help_text="True to record a negative PCR together with a final diagnosis of mpox (refused with 400 otherwise).",
    )
