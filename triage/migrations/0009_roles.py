from django.db import migrations
from django.db.models import Min

from triage.permissions import CLINICIANS_GROUP, install_roles


def create_roles(apps, schema_editor):
    install_roles(apps)


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
