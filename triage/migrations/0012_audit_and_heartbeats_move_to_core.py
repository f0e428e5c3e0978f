"""AuditEvent and WorkerHeartbeat now belong to `core` (core/migrations/0001_initial.py): they leave
triage's state only; their tables stay and are core's now."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("triage", "0011_photo_status_reason"),
        ("core", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name="AuditEvent"),
                migrations.DeleteModel(name="WorkerHeartbeat"),
            ],
            database_operations=[],
        ),
    ]
