import logging

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.services import audit
from core.admin import AuditedReadsAdminMixin, NoAddAdminMixin, ReadOnlyAdminMixin
from core.models import WorkerHeartbeat
from core.services import audit
from triage import performance
from triage.models import (
    Case, Decision, FileDeletionReason, FinalDiagnosis, HistoryModel, LabResult, ModelPromotion, ModelVersion,
    Photo, Prediction, SiteMembership,
)
from triage.registry import active_history_model, active_model_version
from triage.selectors import oldest_waiting_photo, queue_lengths
from triage.services import (
    delete_photo_files, history_model_promotion_check, make_challenger, model_version_promotion_check,
    promote_history_model, promote_model_version, register_history_model,
)

logger = logging.getLogger(__name__)


def photo_thumbnail(photo):
    """Served through the permission-checked, audited view; never a public URL."""
    if photo.files_deleted_at is not None:
        return f"Deleted {photo.files_deleted_at:%d %b %Y}"
    return format_html(
        '<img src="{}" alt="Photo {}" style="max-height:80px;max-width:120px">',
        reverse("photo-image", args=[photo.pk]),
        photo.pk,
    )


class PhotoInline(admin.TabularInline):
    model = Photo
    fields = ["thumbnail", "body_site", "status", "status_reason", "status_detail", "roi_source", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # photos arrive through the upload service, which validates and strips them

    @admin.display(description="Photo")
    def thumbnail(self, photo):
        return photo_thumbnail(photo)


class DecisionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = Decision
    fields = ["created_at", "clinician", "outcome", "action", "patient_instructions", "note", "countersigned_by"]
    readonly_fields = fields
    extra = 0


@admin.register(Case)
class CaseAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: a case's outcome changes only through a clinician's decision (the decision service),
    and cases are never deleted (their photos and decisions are clinical records)."""

    list_display = ["__str__", "flagged", "max_probability", "outcome", "updated_at"]
    list_filter = ["flagged", "outcome"]
    search_fields = ["appointment__reference"]
    # The outcome changes only through a clinician's decision on the case page.
    readonly_fields = [
        "appointment", "flagged", "max_probability", "outcome", "queued_at", "claimed_by", "claimed_until",
        "escalated_at", "created_at", "updated_at",
    ]
    list_select_related = ["appointment"]
    inlines = [PhotoInline, DecisionInline]
    actions = ["delete_photo_files_on_request"]

    def has_delete_photo_files_permission(self, request):
        """Deleting a patient's photos on request: whoever may delete photos (the rows, scores and
        decisions stay), although the case itself is read-only here."""
        return request.user.has_perm("triage.delete_photo")

    @admin.action(description="Delete photos and heatmaps (patient's request)", permissions=["delete_photo_files"])
    def delete_photo_files_on_request(self, request, queryset):
        """Asks for confirmation first; then deletes the files (rows, scores and decisions stay), audited."""
        photos = Photo.objects.filter(case__in=queryset, files_deleted_at__isnull=True).order_by("pk")
        if request.POST.get("confirmed") != "yes":
            return TemplateResponse(request, "admin/triage/case/confirm_photo_file_deletion.html", {
                **self.admin_site.each_context(request),
                "title": "Delete photos and heatmaps?",
                "opts": self.model._meta,
                "cases": queryset,
                "photo_count": photos.count(),
                "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            })
        deleted = delete_photo_files(
            photos=photos, reason=FileDeletionReason.PATIENT_REQUEST, actor=request.user, request=request
        )
        self.message_user(request, f"Deleted the files of {deleted} photos. Scores, decisions and the audit trail are kept.",
                          messages.SUCCESS)


@admin.register(Photo)
class PhotoAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: status and box change only through the worker and the clinician's re-analysis."""

    list_display = ["__str__", "thumbnail", "body_site", "status", "roi_source", "created_at"]
    list_filter = ["status", "status_reason", "body_site", "roi_source"]
    search_fields = ["case__appointment__reference"]
    exclude = ["image"]  # a stored file has no public URL; shown through the protected view instead
    readonly_fields = [
        "thumbnail", "case", "uploaded_by", "width", "height", "sha256", "attempts", "staff_message",
        "files_deleted_at", "files_deleted_reason", "created_at",
    ]

    @admin.display(description="Photo")
    def thumbnail(self, photo):
        return photo_thumbnail(photo)


@admin.register(Prediction)
class PredictionAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every prediction, the challenger's shadow ones included (filter by role)."""

    list_display = ["photo", "model_version", "role", "outcome", "reason", "probability", "threshold", "roi_source", "created_at"]
    list_filter = ["role", "outcome", "reason", "model_version", "roi_source"]
    list_select_related = ["model_version", "photo"]
    exclude = ["heatmap"]  # a stored file has no public URL; shown through the protected view instead
    readonly_fields = ["heatmap_image", "reason_for_clinician"]

    def get_queryset(self, request):
        return Prediction.all_roles.select_related("model_version", "photo")

    @admin.display(description="Heatmap")
    def heatmap_image(self, prediction):
        if not prediction.heatmap:
            return "None (shadow prediction)"
        return format_html(
            '<img src="{}" alt="Heatmap of prediction {}" style="max-height:240px">',
            reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]),
            prediction.pk,
        )


@admin.register(ModelVersion)
class ModelVersionAdmin(NoAddAdminMixin, admin.ModelAdmin):
    """Versions come from `manage.py register_models` / `register_challenger` and describe their
    checkpoint: read-only here. A version runs in shadow as the challenger, and becomes active only by
    promotion, which checks the evidence on confirmed cases and records who and why."""

    list_display = ["version", "architecture", "threshold", "status_label", "live_sensitivity", "installed_at"]
    list_filter = ["is_active", "is_challenger", "architecture"]
    readonly_fields = [
        "version", "architecture", "checkpoint_path", "threshold", "operating_point", "metadata", "is_active",
        "is_challenger", "installed_at",
    ]
    actions = ["make_challenger", "promote", "fit_history_model"]

    def changelist_view(self, request, extra_context=None):
        active = active_model_version()
        if active is not None:
            alert = performance.model_performance(active).figures["alert"]
            if alert:
                self.message_user(request, alert, messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description="Status")
    def status_label(self, model_version):
        return model_version.status.label

    @admin.display(description="Live sensitivity (lab-confirmed)")
    def live_sensitivity(self, model_version):
        figures = performance.model_performance(model_version).figures
        sensitivity = figures["at_threshold"]["sensitivity"]
        if not sensitivity["n"]:
            return "—"
        low, high = sensitivity["ci95"]
        text = f"{sensitivity['value']:.0%} ({low:.0%}–{high:.0%}, n={sensitivity['n']})"
        return format_html('<strong style="color:#b00020">{} below model card</strong>', text) if figures["alert"] else text

    @admin.action(description="Make challenger (runs in shadow on every new photo)")
    def make_challenger(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one model version.", messages.ERROR)
            return
        try:
            model_version = make_challenger(model_version=queryset.get(), actor=request.user)
        except ValueError as error:
            self.message_user(request, str(error), messages.ERROR)
            return
        self.message_user(request, f"{model_version.version} now runs in shadow as the challenger.", messages.SUCCESS)

    @admin.action(description="Promote the challenger to active (checks the evidence, asks why)")
    def promote(self, request, queryset):
        return promotion_action(
            self, request, queryset, promote=promote_model_version, subject_argument="model_version",
            check=model_version_promotion_check,
            replaces=lambda _: f"the active model, {getattr(active_model_version(), 'version', 'none')}",
        )

    @admin.action(description="Fit a history + image model on this active model's confirmed cases")
    def fit_history_model(self, request, queryset):
        if [model_version.is_active for model_version in queryset] != [True]:
            self.message_user(request, "Choose the active model: the history + image model builds on its scores.",
                              messages.ERROR)
            return
        try:
            history_model = register_history_model(fitted_by=request.user)
        except ValidationError as error:
            self.message_user(request, error.messages[0], messages.ERROR)
            return
        self.message_user(request, f"{history_model.version} is a candidate: it is measured against the image score "
                                   "alone on confirmed cases it was not fitted on, and flags nothing until promoted.",
                          messages.SUCCESS)


def promotion_action(modeladmin, request, queryset, *, promote, subject_argument, check, replaces):
    """The promote action of model versions and history models: asks why, showing the service's own
    `check` (refusal and evidence), then calls `promote`, which applies it and records who and why."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Choose exactly one version to promote.", messages.ERROR)
        return None
    subject = queryset.get()
    if "apply" in request.POST:
        try:
            promote(**{subject_argument: subject}, promoted_by=request.user, reason=request.POST.get("reason", ""),
                    request=request)
        except ValidationError as error:
            modeladmin.message_user(request, f"Promotion refused: {error.messages[0]}", messages.ERROR)
            return None
        modeladmin.message_user(request, f"{subject.version} now flags cases.", messages.SUCCESS)
        return None
    refusal, comparison = check(subject)
    return TemplateResponse(request, "admin/triage/modelversion/promote.html", {
        **modeladmin.admin_site.each_context(request), "title": f"Promote {subject.version}",
        "subject": subject, "replaces": replaces(subject), "refusal": refusal, "comparison": comparison,
        "opts": modeladmin.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
    })


@admin.register(HistoryModel)
class HistoryModelAdmin(NoAddAdminMixin, admin.ModelAdmin):
    """History + image models fitted on confirmed cases (`manage.py register_history_model` or the
    model versions' action): read-only. Promotion, by the challenger's rule, makes the combined
    score flag new cases."""

    list_display = ["version", "image_model", "fitted_cases", "fitted_positives", "oof_auc", "threshold", "status_label",
                    "fitted_by", "fitted_at"]
    list_select_related = ["image_model", "fitted_by"]
    readonly_fields = [
        "version", "image_model", "features", "coefficients", "intercept", "threshold", "fitted_cases", "fitted_positives",
        "fitted_case_ids", "oof_auc", "fitted_by", "fitted_at", "is_active",
    ]
    actions = ["promote"]

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Status")
    def status_label(self, history_model):
        return history_model.status.label

    @admin.action(description="Promote: its combined score flags new cases (checks the evidence, asks why)")
    def promote(self, request, queryset):
        def replaces(history_model):
            current = active_history_model()
            return (f"the active history + image model, {current.version}" if current
                    else f"the image score of {history_model.image_model.version} alone")

        return promotion_action(
            self, request, queryset, promote=promote_history_model, subject_argument="history_model",
            check=history_model_promotion_check, replaces=replaces,
        )


@admin.register(ModelPromotion)
class ModelPromotionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "model_version", "replaced", "history_model", "promoted_by", "reason"]
    list_select_related = ["model_version", "replaced", "history_model", "promoted_by"]


@admin.register(LabResult)
class LabResultAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Entered and corrected on the staff case pages (corrections add rows); read-only here."""

    list_display = ["case", "result", "result_date", "entered_by", "created_at", "note"]
    list_filter = ["result", "created_at"]
    search_fields = ["case__appointment__reference"]


@admin.register(FinalDiagnosis)
class FinalDiagnosisAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["case", "diagnosis", "entered_by", "created_at", "note"]
    list_filter = ["diagnosis", "created_at"]
    search_fields = ["case__appointment__reference"]


@admin.register(Decision)
class DecisionAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["case", "clinician", "outcome", "action", "countersigned_by", "created_at"]
    list_filter = ["outcome", "action", "created_at"]


@admin.register(SiteMembership)
class SiteMembershipAdmin(admin.ModelAdmin):
    """Which staff work at which clinic site (they see only those cases) and who is on duty there."""

    list_display = ["user", "clinic", "on_duty"]
    list_editable = ["on_duty"]
    list_filter = ["clinic", "on_duty"]
    search_fields = ["user__username", "user__first_name", "user__last_name", "clinic__name"]
    autocomplete_fields = ["user"]


@admin.register(WorkerHeartbeat)
class WorkerHeartbeatAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Workers and their last heartbeat; the page header shows queue lengths and the oldest waiting photo."""

    list_display = ["hostname", "worker_state", "queues", "concurrency", "pid", "started_at", "last_seen_at"]
    list_filter = ["queues"]

    @admin.display(description="State")
    def worker_state(self, heartbeat):
        return heartbeat.state

    def changelist_view(self, request, extra_context=None):
        try:
            lengths = queue_lengths()
        except Exception:
            logger.exception("Could not read queue lengths from the broker")
            lengths = None
        return super().changelist_view(request, extra_context={
            **(extra_context or {}),
            "queue_lengths": lengths,
            "oldest_waiting_photo": oldest_waiting_photo(),
        })
