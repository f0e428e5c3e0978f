from django.db import migrations
from django.db.models import Min

from triage.permissions import (
    ADMINS_GROUP,
    ALL,
    AUDITORS_GROUP,
    CLINIC_LEADS_GROUP,
    CLINICIANS_GROUP,
    PATIENTS_GROUP,
    install_roles,
)

# The roles as they stood at this migration (the audit log was triage's then; core/0001 moves it,
# with its permissions): frozen, so the migration means the same whatever the roles become.
ROLES_AT_0009 = {
    PATIENTS_GROUP: [],
    CLINICIANS_GROUP: ["triage.review_cases", "triage.decide_cases"],
    CLINIC_LEADS_GROUP: ["triage.review_cases", "triage.decide_cases", "triage.export_decisions"],
    AUDITORS_GROUP: [
        "triage.review_cases",
        "triage.see_all_sites",
        "triage.view_case",
        "triage.view_photo",
        "triage.view_prediction",
        "triage.view_decision",
        "triage.view_auditevent",
        "triage.view_modelversion",
        "triage.view_sitemembership",
        "triage.view_labresult",
        "triage.view_finaldiagnosis",
        "triage.view_modelpromotion",
    ],
    ADMINS_GROUP: [ALL],
}


def create_roles(apps, schema_editor):
    install_roles(apps, roles=ROLES_AT_0009)


def keep_existing_clinicians_seeing_every_site(apps, schema_editor):
    """Before sites were scoped, a clinician saw every case: keep that until an admin narrows it."""
    User = apps.get_model("auth", "User")
    Clinic = apps.get_model("booking", "Clinic")
    SiteMembership = apps.get_model("triage", "SiteMembership")
    for user in User.objects.filter(groups__name=CLINICIANS_GROUP):
        for clinic in Clinic.objects.all():
            SiteMembership.objects.get_or_create(user=user, clinic=clinic)


def queue_times_from_first_photos(apps, schema_editor):
    Case = apps.get_model("triage", "Case")
    for case in Case.objects.annotate(first_photo=Min("photos__created_at")).filter(first_photo__isnull=False):
        Case.objects.filter(pk=case.pk).update(queued_at=case.first_photo)


class Migration(migrations.Migration):
    dependencies = [
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("booking", "0001_initial"),
        ("triage", "0008_staff_dashboard"),
    ]

    operations = [
        migrations.RunPython(create_roles, migrations.RunPython.noop),
        migrations.RunPython(keep_existing_clinicians_seeing_every_site, migrations.RunPython.noop),
        migrations.RunPython(queue_times_from_first_photos, migrations.RunPython.noop),
    ]
