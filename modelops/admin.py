"""Admin of the model registry: versions (challenger, promotion, history model fitting), history +
image models and the promotion record."""

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse
from django.utils.html import format_html

from core.admin import NoAddAdminMixin, ReadOnlyAdminMixin
from modelops import performance
from modelops.services import (
    history_model_promotion_check,
    make_challenger,
    model_version_promotion_check,
    promote_history_model,
    promote_model_version,
    register_history_model,
)
from registry.models import HistoryModel, ModelPromotion, ModelVersion
from registry.versions import active_history_model, active_model_version


@admin.register(ModelVersion)
class ModelVersionAdmin(NoAddAdminMixin, admin.ModelAdmin):
    """Versions come from `manage.py register_models` / `register_challenger` and describe their
    checkpoint: read-only here. A version runs in shadow as the challenger, and becomes active only by
    promotion, which checks the evidence on confirmed cases and records who and why."""

    list_display = ["version", "architecture", "threshold", "status_label", "live_sensitivity", "installed_at"]
    list_filter = ["is_active", "is_challenger", "architecture"]
    readonly_fields = [
        "version",
        "architecture",
        "checkpoint_path",
        "threshold",
        "operating_point",
        "metadata",
        "is_active",
        "is_challenger",
        "installed_at",
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
        return (
            format_html('<strong class="admin-alert">{} below model card</strong>', text) if figures["alert"] else text
        )

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
            self,
            request,
            queryset,
            promote=promote_model_version,
            subject_argument="model_version",
            check=model_version_promotion_check,
            replaces=lambda _: f"the active model, {getattr(active_model_version(), 'version', 'none')}",
        )

    @admin.action(description="Fit a history + image model on this active model's confirmed cases")
    def fit_history_model(self, request, queryset):
        if [model_version.is_active for model_version in queryset] != [True]:
            self.message_user(
                request, "Choose the active model: the history + image model builds on its scores.", messages.ERROR
            )
            return
        try:
            history_model = register_history_model(fitted_by=request.user)
        except ValidationError as error:
            self.message_user(request, error.messages[0], messages.ERROR)
            return
        self.message_user(
            request,
            f"{history_model.version} is a candidate: it is measured against the image score "
            "alone on confirmed cases it was not fitted on, and flags nothing until promoted.",
            messages.SUCCESS,
        )


def promotion_action(modeladmin, request, queryset, *, promote, subject_argument, check, replaces):
    """The promote action of model versions and history models: asks why, showing the service's own
    `check` (refusal and evidence), then calls `promote`, which applies it and records who and why."""
    if queryset.count() != 1:
        modeladmin.message_user(request, "Choose exactly one version to promote.", messages.ERROR)
        return None
    subject = queryset.get()
    if "apply" in request.POST:
        try:
            promote(
                **{subject_argument: subject},
                promoted_by=request.user,
                reason=request.POST.get("reason", ""),
                request=request,
            )
        except ValidationError as error:
            modeladmin.message_user(request, f"Promotion refused: {error.messages[0]}", messages.ERROR)
            return None
        modeladmin.message_user(request, f"{subject.version} now flags cases.", messages.SUCCESS)
        return None
    refusal, comparison = check(subject)
    return TemplateResponse(
        request,
        "admin/registry/modelversion/promote.html",
        {
            **modeladmin.admin_site.each_context(request),
            "title": f"Promote {subject.version}",
            "subject": subject,
            "replaces": replaces(subject),
            "refusal": refusal,
            "comparison": comparison,
            "opts": modeladmin.model._meta,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        },
    )


@admin.register(HistoryModel)
class HistoryModelAdmin(NoAddAdminMixin, admin.ModelAdmin):
    """History + image models fitted on confirmed cases (`manage.py register_history_model` or the
    model versions' action): read-only. Promotion, by the challenger's rule, makes the combined
    score flag new cases."""

    list_display = [
        "version",
        "image_model",
        "fitted_cases",
        "fitted_positives",
        "oof_auc",
        "threshold",
        "status_label",
        "fitted_by",
        "fitted_at",
    ]
    list_select_related = ["image_model", "fitted_by"]
    readonly_fields = [
        "version",
        "image_model",
        "features",
        "coefficients",
        "intercept",
        "threshold",
        "fitted_cases",
        "fitted_positives",
        "fitted_case_ids",
        "oof_auc",
        "fitted_by",
        "fitted_at",
        "is_active",
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
            return (
                f"the active history + image model, {current.version}"
                if current
                else f"the image score of {history_model.image_model.version} alone"
            )

        return promotion_action(
            self,
            request,
            queryset,
            promote=promote_history_model,
            subject_argument="history_model",
            check=history_model_promotion_check,
            replaces=replaces,
        )


@admin.register(ModelPromotion)
class ModelPromotionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "model_version", "replaced", "history_model", "promoted_by", "reason"]
    list_select_related = ["model_version", "replaced", "history_model", "promoted_by"]
