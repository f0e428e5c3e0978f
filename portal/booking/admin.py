from django.contrib import admin, messages
from django.utils.html import format_html_join

from core.admin import AuditedReadsAdminMixin, ReadOnlyAdminMixin
from portal.booking.models import (
    Appointment,
    Clinic,
    Closure,
    ConsentRecord,
    PatientInformation,
    Schedule,
    Service,
    Slot,
)
from portal.booking.selectors import appointments_during
from portal.booking.services import generate_slots


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False  # made by the booking services only

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Clinic)
class ClinicAdmin(admin.ModelAdmin):
    list_display = ["name", "address", "phone"]
    search_fields = ["name"]


@admin.register(Closure)
class ClosureAdmin(admin.ModelAdmin):
    """Holidays and other closed days per site: patients are offered no times on them."""

    list_display = ["clinic", "first_day", "last_day", "reason"]
    list_filter = ["clinic"]
    date_hierarchy = "first_day"

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        booked = list(appointments_during(closure=obj).values_list("reference", flat=True))
        if booked:
            self.message_user(
                request,
                (
                    f"{len(booked)} appointment(s) are booked at {obj.clinic} on these days and were not moved: "
                    f"{', '.join(booked)}. Contact the patients to move or cancel them."
                ),
                messages.WARNING,
            )


@admin.register(Service)
class ServiceAdmin(admin.ModelAdmin):
    list_display = ["name", "duration_minutes", "is_active"]
    list_filter = ["is_active"]


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    list_display = ["clinician", "clinic", "service", "weekday", "start_time", "end_time", "valid_from", "valid_until"]
    list_filter = ["clinic", "service", "weekday"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        created = generate_slots()
        self.message_user(request, f"{created} new slots made from the schedules.")


class AppointmentInline(ReadOnlyInline):
    model = Appointment
    fields = ["reference", "patient", "status", "consent_care", "consent_research"]
    readonly_fields = fields


@admin.register(Slot)
class SlotAdmin(admin.ModelAdmin):
    list_display = ["starts_at", "clinic", "service", "clinician", "duration_minutes"]
    list_filter = ["clinic", "service", "starts_at"]
    date_hierarchy = "starts_at"
    inlines = [AppointmentInline]


class ConsentRecordInline(ReadOnlyInline):
    model = ConsentRecord
    fields = ["kind", "given", "text_version", "recorded_by", "recorded_at"]
    readonly_fields = fields
    show_change_link = False


@admin.register(Appointment)
class AppointmentAdmin(AuditedReadsAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: appointments are booked, moved and cancelled through the booking services, which
    keep the slot, the case, the consents and the patient's emails consistent."""

    list_display = ["reference", "patient", "slot", "status", "consent_research"]
    list_filter = ["status", "consent_research", "slot__clinic", "slot__service"]
    search_fields = ["reference", "patient__username", "patient__email"]
    fields = [
        "reference",
        "patient",
        "slot",
        "status",
        "answers",
        "consent_care",
        "consent_research",
        "language",
        "reminder_sent_at",
        "created_at",
    ]
    readonly_fields = fields
    list_select_related = ["patient", "slot__clinic", "slot__service"]
    inlines = [ConsentRecordInline]

    @admin.display(description="Questionnaire")
    def answers(self, obj):
        return format_html_join("", "<p><strong>{}</strong><br>{}</p>", obj.questionnaire_answers())


@admin.register(PatientInformation)
class PatientInformationAdmin(admin.ModelAdmin):
    list_display = ["title", "language", "updated_at"]
