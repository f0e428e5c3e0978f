"""Records moved out of `triage` by state alone (the audit log and worker heartbeats to `core`, the
model registry to `registry`): on a database that already holds rows, migrating forward keeps every
row, readable through the new models, and the permissions granted on them follow."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("triage", "0011_photo_status_reason"), ("core", None), ("registry", None)]
AFTER = [("triage", "0013_model_registry_moves_to_registry"), ("core", "0001_initial"), ("registry", "0001_initial")]


def _migrate_to_latest():
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state([target for target in targets if target[1]]).apps


@pytest.mark.django_db(transaction=True)
def test_rows_and_permissions_survive_the_move_to_core(make_staff):
    old = _migrate(BEFORE)
    try:
        User = old.get_model("auth", "User")
        actor = User.objects.create(username="auditor-before")
        old.get_model("triage", "AuditEvent").objects.create(
            actor=actor,
            action="view_case",
            object_type="case",
            object_id="7",
            case_reference="ABC123",
            allowed=False,
            detail={"why": "before"},
            ip_address="10.0.0.1",
        )
        now = timezone.now()
        old.get_model("triage", "WorkerHeartbeat").objects.create(
            hostname="inference@a",
            queues="inference",
            pid=10,
            concurrency=2,
            started_at=now,
            last_seen_at=now,
        )
        version = old.get_model("triage", "ModelVersion").objects.create(
            version="shipped-1",
            architecture="tiny",
            checkpoint_path="/models/shipped-1.pt",
            threshold=0.4,
            is_active=True,
        )
        history = old.get_model("triage", "HistoryModel").objects.create(
            version="history-1",
            image_model=version,
            features=["image"],
            coefficients=[1.0],
            intercept=0.0,
            threshold=0.5,
            fitted_cases=12,
            fitted_positives=4,
        )
        old.get_model("triage", "ModelPromotion").objects.create(
            model_version=version,
            history_model=history,
            promoted_by=actor,
            reason="better",
            evidence={"n": 12},
        )
        Permission = old.get_model("auth", "Permission")
        assert Permission.objects.filter(content_type__app_label="triage", codename="view_auditevent").exists()
        assert Permission.objects.filter(content_type__app_label="triage", codename="view_modelversion").exists()
    finally:
        new = _migrate(AFTER)
        _migrate_to_latest()  # later migrations too: the database is left as every other test expects it

    event = new.get_model("core", "AuditEvent").objects.get()
    assert (
        event.actor.username,
        event.action,
        event.case_reference,
        event.allowed,
        event.detail,
        event.ip_address,
    ) == ("auditor-before", "view_case", "ABC123", False, {"why": "before"}, "10.0.0.1")
    assert new.get_model("core", "WorkerHeartbeat").objects.get().hostname == "inference@a"
    Permission = new.get_model("auth", "Permission")
    assert not Permission.objects.filter(content_type__app_label="triage", codename="view_auditevent").exists()
    auditors = new.get_model("auth", "Group").objects.get(name="auditors")
    assert auditors.permissions.filter(content_type__app_label="core", codename="view_auditevent").exists()
    assert auditors.permissions.filter(content_type__app_label="registry", codename="view_modelversion").exists()
    promotion = new.get_model("registry", "ModelPromotion").objects.get()
    assert (promotion.model_version.version, promotion.history_model.image_model.version, promotion.reason) == (
        "shipped-1",
        "shipped-1",
        "better",
    )

    from core.models import AuditEvent  # the live models read the same rows
    from registry.models import ModelVersion

    assert AuditEvent.objects.get().object_id == "7"
    assert ModelVersion.objects.get().is_active
