from django.db import migrations, models


def close_cases_of_cancelled_appointments(apps, schema_editor):
    Case = apps.get_model("triage", "Case")
    Case.objects.filter(appointment__status="cancelled").update(is_open=False)


class Migration(migrations.Migration):
    dependencies = [
        ("booking", "0001_initial"),
        ("triage", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="case",
            name="is_open",
            field=models.BooleanField(
                db_index=True, default=True, help_text="Closed when the appointment is cancelled."
            ),
        ),
        migrations.RunPython(close_cases_of_cancelled_appointments, migrations.RunPython.noop),
    ]
