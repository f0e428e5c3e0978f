from django import forms
from django.contrib import admin, messages

from portal.integrations.models import ApiKey, ExternalAppointment, ExternalPatient, WebhookDelivery, WebhookEndpoint
from portal.integrations.services import create_api_key, redeliver, revoke_api_key


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Adding a key shows its full text once, in the confirmation message; only a hash is kept."""

    list_display = ["name", "clinic", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["clinic"]
    search_fields = ["name", "prefix"]
    fields = ["clinic", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields + (["clinic"] if obj is not None else [])

    def has_delete_permission(self, request, obj=None):
        return False  # revoke instead: the key's uploads and audit events keep naming it

    def save_model(self, request, obj, form, change):
        if change:
            obj.save(update_fields=["name"])
            return
        api_key, full_key = create_api_key(clinic=obj.clinic, name=obj.name)
        obj.pk = api_key.pk
        obj.prefix = api_key.prefix
        self.message_user(
            request,
            f"API key for {api_key.clinic}: {full_key} — copy it now; it is not stored and will not be shown again.",
            messages.WARNING,
        )

    @admin.action(description="Revoke (the key stops working at once)")
    def revoke(self, request, queryset):
        for api_key in queryset:
            revoke_api_key(api_key=api_key, revoked_by=request.user)
        self.message_user(request, f"{queryset.count()} key(s) revoked.", messages.SUCCESS)


class WebhookEndpointForm(forms.ModelForm):
    """The event types as checkboxes (stored as a JSON list); none ticked sends every event."""

    url = forms.URLField(
        max_length=500, assume_scheme="https", help_text=WebhookEndpoint._meta.get_field("url").help_text
    )
    events = forms.MultipleChoiceField(
        choices=WebhookEndpoint.Event.choices,
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="Tick none to receive every event, including types added later.",
    )

    class Meta:
        model = WebhookEndpoint
        fields = ["clinic", "url", "secret", "events", "payload_format", "is_active"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "clinic", "events", "payload_format", "is_active", "created_at"]
    list_filter = ["clinic", "is_active", "payload_format"]


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "response_code", "last_attempt_at"]
    list_filter = ["status", "event_type", "endpoint__clinic"]
    readonly_fields = [
        "endpoint",
        "event_id",
        "event_type",
        "payload",
        "status",
        "attempts",
        "response_code",
        "last_error",
        "created_at",
        "last_attempt_at",
        "delivered_at",
    ]
    actions = ["redeliver_selected"]

    def has_add_permission(self, request):
        return False  # deliveries are made by triage events

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Redeliver (same event id and body, signed afresh)")
    def redeliver_selected(self, request, queryset):
        for delivery in queryset.select_related("endpoint"):
            redeliver(delivery=delivery)
        self.message_user(request, f"{queryset.count()} delivery(ies) queued again.", messages.SUCCESS)


class ExternalIdAdmin(admin.ModelAdmin):
    """Made only through the API; shown here to find a booking system's id."""

    list_filter = ["clinic"]
    search_fields = ["external_id"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ExternalPatient)
class ExternalPatientAdmin(ExternalIdAdmin):
    list_display = ["external_id", "clinic", "user", "created_by", "created_at"]


@admin.register(ExternalAppointment)
class ExternalAppointmentAdmin(ExternalIdAdmin):
    list_display = ["external_id", "clinic", "appointment", "created_by", "created_at"]
    search_fields = ["external_id", "appointment__reference"]
