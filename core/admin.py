from django.contrib import admin
from django.contrib.admin.utils import unquote

from core.models import AuditEvent
from core.services import audit


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


class AuditedReadsAdminMixin:
    """Patient data: every admin list and record view is an audit event (action `admin_list_<model>`
    with the query and the ids shown, or `admin_view_<model>` with the record)."""

    def changelist_view(self, request, extra_context=None):
        response = super().changelist_view(request, extra_context)
        changelist = getattr(response, "context_data", {}).get("cl")
        audit(
            actor=request.user,
            action=f"admin_list_{self.model._meta.model_name}",
            obj=None,
            request=request,
            query=request.GET.urlencode(),
            shown=[obj.pk for obj in changelist.result_list] if changelist else [],
        )
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        obj = self.get_object(request, unquote(object_id))
        audit(
            actor=request.user,
            action=f"admin_view_{self.model._meta.model_name}",
            obj=obj,
            request=request,
            allowed=obj is not None and self.has_view_or_change_permission(request, obj),
            object_id=object_id,
            reference=getattr(obj, "reference", None),  # an appointment names itself; a case's rows via the case
        )
        return super().change_view(request, object_id, form_url, extra_context)


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Append-only: events can be searched and read, never edited or deleted."""

    list_display = [
        "created_at",
        "actor",
        "action",
        "case_reference",
        "object_type",
        "object_id",
        "allowed",
        "ip_address",
    ]
    list_filter = ["action", "allowed", "object_type", "created_at"]
    search_fields = ["case_reference", "action", "object_id", "actor__username", "ip_address"]
    list_select_related = ["actor"]
    date_hierarchy = "created_at"
