import logging

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html

from core.admin import AuditedReadsAdminMixin, ReadOnlyAdminMixin
from core.models import WorkerHeartbeat
from triage.models import (
    Case,
    Decision,
    FileDeletionReason,
    FinalDiagnosis,
    LabResult,
    Photo,
    Prediction,
    SiteMembership,
)
from triage.selectors import oldest_waiting_photo, queue_lengths
from triage.services import (
    delete_photo_files,
)

logger = logging.getLogger(__name__)


def photo_thumbnail(photo):
    """Served through the permission-checked, audited view; never a public URL."""
    if photo.files_deleted_at is not None:
        return f"Deleted {photo.files_deleted_at:%d %b %Y}"
    if not photo.is_viewable:
        return "Not viewable (being prepared, or could not be decoded)"
    return format_html(
        '<img src="{}" alt="Photo {}" class="admin-thumbnail">',
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
        "appointment",
        "flagged",
        "max_probability",
        "outcome",
        "queued_at",
        "claimed_by",
        "claimed_until",
        "escalated_at",
        "created_at",
        "updated_at",
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
            return TemplateResponse(
                request,
                "admin/triage/case/confirm_photo_file_deletion.html",
                {
                    **self.admin_site.each_context(request),
                    "title": "Delete photos and heatmaps?",
                    "opts": self.model._meta,
                    "cases": queryset,
                    "photo_count": photos.count(),
                    "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
                },
            )
        deleted = delete_photo_files(
            photos=photos, reason=FileDeletionReason.PATIENT_REQUEST, actor=request.user, request=request
        )
        self.message_user(
            request,
            f"Deleted the files of {deleted} photos. Scores, decisions and the audit trail are kept.",
            messages.SUCCESS,
        )


@admin.register(Photo)
class PhotoAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: status and box change only through the worker and the clinician's re-analysis."""

    list_display = ["__str__", "thumbnail", "body_site", "status", "roi_source", "created_at"]
    list_filter = ["status", "status_reason", "body_site", "roi_source"]
    search_fields = ["case__appointment__reference"]
    # A stored file has no public URL: the photo is shown through the protected view instead, and the
    # original (metadata and all, until the worker deletes it) is never shown.
    exclude = ["original", "image"]
    readonly_fields = [
        "thumbnail",
        "case",
        "uploaded_by",
        "width",
        "height",
        "sha256",
        "attempts",
        "staff_message",
        "files_deleted_at",
        "files_deleted_reason",
        "created_at",
    ]

    @admin.display(description="Photo")
    def thumbnail(self, photo):
        return photo_thumbnail(photo)


@admin.register(Prediction)
class PredictionAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every prediction, the challenger's shadow ones included (filter by role)."""

    list_display = [
        "photo",
        "model_version",
        "role",
        "outcome",
        "reason",
        "probability",
        "threshold",
        "roi_source",
        "created_at",
    ]
    list_filter = ["role", "outcome", "reason", "model_version", "roi_source"]
    list_select_related = ["model_version", "photo"]
    exclude = ["heatmap"]  # a stored file has no public URL; shown through the protected view instead
    readonly_fields = ["heatmap_image", "reason_for_clinician"]

    def get_queryset(self, request):
        return Prediction.objects.select_related("model_version", "photo")

    @admin.display(description="Heatmap")
    def heatmap_image(self, prediction):
        if not prediction.heatmap:
            return "None (shadow prediction)"
        return format_html(
            '<img src="{}" alt="Heatmap of prediction {}" class="admin-heatmap">',
            reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]),
            prediction.pk,
        )


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
        return super().changelist_view(
            request,
            extra_context={
                **(extra_context or {}),
                "queue_lengths": lengths,
                "oldest_waiting_photo": oldest_waiting_photo(),
            },
        )
