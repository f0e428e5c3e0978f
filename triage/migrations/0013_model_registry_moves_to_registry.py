"""ModelVersion, HistoryModel and ModelPromotion now belong to `registry` (registry/migrations/0001):
their foreign keys from cases and predictions point there, and they leave triage's state only; the
tables stay."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0001_initial"),
        ("triage", "0012_audit_and_heartbeats_move_to_core"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveField(
                    model_name="modelpromotion",
                    name="replaced_history_model",
                ),
                migrations.RemoveField(
                    model_name="modelpromotion",
                    name="history_model",
                ),
                migrations.AlterField(
                    model_name="case",
                    name="history_model",
                    field=models.ForeignKey(
                        blank=True,
                        help_text="The history + image model whose combined score set the flag; empty: the image score alone did.",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="registry.historymodel",
                    ),
                ),
                migrations.RemoveField(
                    model_name="modelpromotion",
                    name="model_version",
                ),
                migrations.RemoveField(
                    model_name="modelpromotion",
                    name="promoted_by",
                ),
                migrations.RemoveField(
                    model_name="modelpromotion",
                    name="replaced",
                ),
                migrations.AlterField(
                    model_name="prediction",
                    name="model_version",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="predictions",
                        to="registry.modelversion",
                    ),
                ),
                migrations.DeleteModel(
                    name="HistoryModel",
                ),
                migrations.DeleteModel(
                    name="ModelPromotion",
                ),
                migrations.DeleteModel(
                    name="ModelVersion",
                ),
            ],
            database_operations=[],
        ),
    ]
