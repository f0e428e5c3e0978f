from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from triage.models import AuditEvent, Case, Decision, ModelVersion, Photo, Prediction
from triage.registry import activate_model_version


class NoAddAdminMixin:
    """Rows made only by services (bookings, uploads, `register_models`), never typed into admin."""

    def has_add_permission(self, request, obj=None):
        return False


class ReadOnlyAdminMixin(NoAddAdminMixin):
    """Records written only by services: visible in the admin, never editable there."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def photo_thumbnail(photo):
    """Served through the permission-checked, audited view; never a public URL."""
    return format_html(
        '<img src="{}" alt="Photo {}" style="max-height:80px;max-width:120px">',
        reverse("photo-image", args=[photo.pk]),
        photo.pk,
    )


class PhotoInline(admin.TabularInline):
    model = Photo
    fields = ["thumbnail", "body_site", "status", "status_detail", "roi_source", "created_at"]
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
    fields = ["created_at", "clinician", "outcome", "action", "note"]
    readonly_fields = fields
    extra = 0


@admin.register(Case)
class CaseAdmin(NoAddAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "flagged", "max_probability", "outcome", "updated_at"]
    list_filter = ["flagged", "outcome"]
    search_fields = ["appointment__reference"]
    readonly_fields = ["appointment", "flagged", "max_probability", "created_at", "updated_at"]
    list_select_related = ["appointment"]
    inlines = [PhotoInline, DecisionInline]


@admin.register(Photo)
class PhotoAdmin(NoAddAdminMixin, admin.ModelAdmin):
    list_display = ["__str__", "thumbnail", "body_site", "status", "roi_source", "created_at"]
    list_filter = ["status", "body_site", "roi_source"]
    search_fields = ["case__appointment__reference"]
    exclude = ["image"]  # a stored file has no public URL; shown through the protected view instead
    readonly_fields = ["thumbnail", "case", "uploaded_by", "width", "height", "sha256", "attempts", "created_at"]

    @admin.display(description="Photo")
    def thumbnail(self, photo):
        return photo_thumbnail(photo)


@admin.register(Prediction)
class PredictionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["photo", "model_version", "probability", "threshold", "flagged", "roi_source", "created_at"]
    list_filter = ["flagged", "model_version", "roi_source"]
    list_select_related = ["model_version", "photo"]
    exclude = ["heatmap"]  # a stored file has no public URL; shown through the protected view instead
    readonly_fields = ["heatmap_image"]

    @admin.display(description="Heatmap")
    def heatmap_image(self, prediction):
        return format_html(
            '<img src="{}" alt="Heatmap of prediction {}" style="max-height:240px">',
            reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]),
            prediction.pk,
        )


@admin.register(ModelVersion)
class ModelVersionAdmin(NoAddAdminMixin, admin.ModelAdmin):
    """Versions come from `manage.py register_models` and describe their checkpoint: read-only here,
    except for choosing which one is active."""

    list_display = ["version", "architecture", "threshold", "operating_point", "is_active", "installed_at"]
    list_filter = ["is_active", "architecture"]
    readonly_fields = [
        "version", "architecture", "checkpoint_path", "threshold", "operating_point", "metadata", "is_active",
        "installed_at",
    ]
    actions = ["make_active"]

    @admin.action(description="Make active (the only model used for new analyses)")
    def make_active(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one model version to make active.", messages.ERROR)
            return
        model_version = activate_model_version(queryset.get())
        self.message_user(request, f"{model_version.version} is now the active model.", messages.SUCCESS)


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["case", "clinician", "outcome", "action", "created_at"]
    list_filter = ["outcome", "action", "created_at"]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "actor", "action", "object_type", "object_id", "allowed", "ip_address"]
    list_filter = ["action", "allowed", "created_at"]
    search_fields = ["object_id", "actor__username"]
    date_hierarchy = "created_at"
