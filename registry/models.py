"""The model registry's records: installed classifier versions, fitted history + image models, and
who promoted which, why and on what evidence."""

from django.conf import settings
from django.db import models
from django.db.models import Q


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
    is_challenger = models.BooleanField(
        default=False, help_text="Runs in shadow: predictions stored, never shown or used to flag."
    )
    installed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "triage_modelversion"  # made by triage before the registry had an app of its own
        ordering = ["-installed_at"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=Q(is_active=True), name="one_active_model"),
            models.UniqueConstraint(
                fields=["is_challenger"], condition=Q(is_challenger=True), name="one_challenger_model"
            ),
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
    and the questionnaire answers (`triage.history.HISTORY_FEATURES`), kept as a version.

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
    fitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fitted_at = models.DateTimeField(auto_now_add=True)
    is_active = models.BooleanField(default=False)

    class Meta:
        db_table = "triage_historymodel"
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
    history_model = models.ForeignKey(
        HistoryModel, null=True, blank=True, on_delete=models.PROTECT, related_name="promotions"
    )
    replaced_history_model = models.ForeignKey(
        HistoryModel, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    promoted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.TextField()
    evidence = models.JSONField(default=dict, help_text="The comparison figures the promotion was allowed on.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "triage_modelpromotion"
        ordering = ["-created_at", "-id"]

    def __str__(self):
        promoted = self.history_model or self.model_version
        return f"{promoted.version} promoted {self.created_at:%Y-%m-%d %H:%M}"
