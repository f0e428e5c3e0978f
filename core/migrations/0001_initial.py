"""The audit log and worker heartbeats move from `triage` to `core` without touching the database:
the tables keep their names (`db_table`), only Django's state changes (SeparateDatabaseAndState).
The content types follow, so the permissions granted on them (auditors' `view_auditevent`) and the
admin log entries stay attached."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.content_types import move_content_types


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
        ("contenttypes", "0002_remove_content_type_name"),
        ("triage", "0011_photo_status_reason"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="AuditEvent",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("action", models.CharField(db_index=True, max_length=60)),
                        ("object_type", models.CharField(max_length=60)),
                        ("object_id", models.CharField(max_length=60)),
                        (
                            "case_reference",
                            models.CharField(
                                blank=True,
                                db_index=True,
                                help_text="Booking reference of the case concerned (or asked for).",
                                max_length=40,
                            ),
                        ),
                        ("allowed", models.BooleanField(default=True)),
                        ("detail", models.JSONField(blank=True, default=dict)),
                        ("ip_address", models.GenericIPAddressField(blank=True, null=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True, db_index=True)),
                        (
                            "actor",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={"db_table": "triage_auditevent", "ordering": ["-created_at", "-id"]},
                ),
                migrations.CreateModel(
                    name="WorkerHeartbeat",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("hostname", models.CharField(max_length=200, unique=True)),
                        ("queues", models.CharField(max_length=200)),
                        ("pid", models.PositiveIntegerField()),
                        ("concurrency", models.PositiveSmallIntegerField()),
                        ("started_at", models.DateTimeField()),
                        ("last_seen_at", models.DateTimeField(db_index=True)),
                        ("stopped_at", models.DateTimeField(blank=True, null=True)),
                    ],
                    options={"db_table": "triage_workerheartbeat", "ordering": ["hostname"]},
                ),
            ],
            database_operations=[],
        ),
        move_content_types(["auditevent", "workerheartbeat"], source="triage", target="core"),
    ]
