from django.contrib import admin

from portal.booking.models import Appointment, Clinic, Slot
from triage.admin import AuditedReadsAdminMixin


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ["name", "address"]
    search_fields = ["name"]


class AppointmentInline(admin.TabularInline):
    model = Appointment
    fields = ["reference", "patient", "status", "consent_care", "consent_research"]
    readonly_fields = ["reference", "patient", "consent_care", "consent_research"]
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # bookings are made through the booking service


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ["starts_at", "clinic", "duration_minutes"]
    list_filter = ["clinic", "starts_at"]
    date_hierarchy = "starts_at"
    inlines = [AppointmentInline]


@admin.register(Appointment)
class AppointmentAdmin(AuditedReadsAdminMixin, admin.ModelAdmin):
    list_display = ["reference", "patient", "slot", "status", "consent_research"]
    list_filter = ["status", "consent_research", "slot__clinic"]
    search_fields = ["reference", "patient__username", "patient__email"]
    readonly_fields = ["reference", "patient", "slot", "consent_care", "consent_research", "created_at"]
    list_select_related = ["patient", "slot__clinic"]

    def has_add_permission(self, request):
        return False  # bookings are made through the booking service
