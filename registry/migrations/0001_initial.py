"""The model registry's records move from `triage` to `registry` without touching the database: the
tables keep their names (`db_table`), only Django's state changes (SeparateDatabaseAndState). The
content types follow, so permissions granted on them (auditors' view_modelversion) stay attached."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from core.content_types import move_content_types


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("triage", "0012_audit_and_heartbeats_move_to_core"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="HistoryModel",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("version", models.CharField(max_length=120, unique=True)),
                        ("features", models.JSONField(help_text="Feature names, in the order of the coefficients.")),
                        ("coefficients", models.JSONField(help_text="Log-odds per unit of each feature.")),
                        ("intercept", models.FloatField()),
                        (
                            "threshold",
                            models.FloatField(
                                help_text="On the combined probability: the highest that flags, out of fold, as many lab-positive cases as the image model did at its threshold."
                            ),
                        ),
                        ("fitted_cases", models.PositiveIntegerField()),
                        ("fitted_positives", models.PositiveIntegerField()),
                        (
                            "fitted_case_ids",
                            models.JSONField(
                                default=list, help_text="Cases it was fitted on: left out of its comparison."
                            ),
                        ),
                        (
                            "oof_auc",
                            models.FloatField(
                                blank=True, help_text="Out-of-fold AUC on the cases it was fitted on.", null=True
                            ),
                        ),
                        ("fitted_at", models.DateTimeField(auto_now_add=True)),
                        ("is_active", models.BooleanField(default=False)),
                        (
                            "fitted_by",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "triage_historymodel",
                        "ordering": ["-fitted_at", "-id"],
                    },
                ),
                migrations.CreateModel(
                    name="ModelVersion",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("version", models.CharField(max_length=120, unique=True)),
                        ("architecture", models.CharField(max_length=60)),
                        ("checkpoint_path", models.CharField(max_length=500)),
                        ("threshold", models.FloatField()),
                        ("operating_point", models.CharField(blank=True, max_length=200)),
                        ("metadata", models.JSONField(blank=True, default=dict)),
                        ("is_active", models.BooleanField(default=False)),
                        (
                            "is_challenger",
                            models.BooleanField(
                                default=False,
                                help_text="Runs in shadow: predictions stored, never shown or used to flag.",
                            ),
                        ),
                        ("installed_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={
                        "db_table": "triage_modelversion",
                        "ordering": ["-installed_at"],
                        "constraints": [
                            models.UniqueConstraint(
                                condition=models.Q(("is_active", True)), fields=("is_active",), name="one_active_model"
                            ),
                            models.UniqueConstraint(
                                condition=models.Q(("is_challenger", True)),
                                fields=("is_challenger",),
                                name="one_challenger_model",
                            ),
                            models.CheckConstraint(
                                condition=models.Q(("is_active", True), ("is_challenger", True), _negated=True),
                                name="active_is_not_challenger",
                            ),
                        ],
                    },
                ),
                migrations.CreateModel(
                    name="ModelPromotion",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        ("reason", models.TextField()),
                        (
                            "evidence",
                            models.JSONField(
                                default=dict, help_text="The comparison figures the promotion was allowed on."
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "history_model",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="promotions",
                                to="registry.historymodel",
                            ),
                        ),
                        (
                            "promoted_by",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                        (
                            "replaced_history_model",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="registry.historymodel",
                            ),
                        ),
                        (
                            "model_version",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="promotions",
                                to="registry.modelversion",
                            ),
                        ),
                        (
                            "replaced",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.PROTECT,
                                related_name="+",
                                to="registry.modelversion",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "triage_modelpromotion",
                        "ordering": ["-created_at", "-id"],
                    },
                ),
                migrations.AddField(
                    model_name="historymodel",
                    name="image_model",
                    field=models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="history_models",
                        to="registry.modelversion",
                    ),
                ),
                migrations.AddConstraint(
                    model_name="historymodel",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("is_active", True)), fields=("is_active",), name="one_active_history_model"
                    ),
                ),
            ],
            database_operations=[],
        ),
        move_content_types(["modelversion", "historymodel", "modelpromotion"], source="triage", target="registry"),
    ]
