"""The audit log and worker heartbeats moved from `triage` to `core` by state alone: on a database
that already holds rows, migrating forward keeps every row, readable through the new models, and
the permissions granted on the audit log (auditors' view_auditevent) follow it."""
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

BEFORE = [("triage", "0011_photo_status_reason"), ("core", None)]
AFTER = [("triage", "0012_audit_and_heartbeats_move_to_core"), ("core", "0001_initial")]


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
            actor=actor, action="view_case", object_type="case", object_id="7", case_reference="ABC123",
            allowed=False, detail={"why": "before"}, ip_address="10.0.0.1",
        )
        now = timezone.now()
        old.get_model("triage", "WorkerHeartbeat").objects.create(
            hostname="inference@a", queues="inference", pid=10, concurrency=2, started_at=now, last_seen_at=now,
        )
        Permission = old.get_model("auth", "Permission")
        assert Permission.objects.filter(content_type__app_label="triage", codename="view_auditevent").exists()
    finally:
        new = _migrate(AFTER)

    event = new.get_model("core", "AuditEvent").objects.get()
    assert (event.actor.username, event.action, event.case_reference, event.allowed, event.detail, event.ip_address) == (
        "auditor-before", "view_case", "ABC123", False, {"why": "before"}, "10.0.0.1"
    )
    assert new.get_model("core", "WorkerHeartbeat").objects.get().hostname == "inference@a"
    Permission = new.get_model("auth", "Permission")
    assert not Permission.objects.filter(content_type__app_label="triage", codename="view_auditevent").exists()
    auditors = new.get_model("auth", "Group").objects.get(name="auditors")
    assert auditors.permissions.filter(content_type__app_label="core", codename="view_auditevent").exists()

    from core.models import AuditEvent  # the live model reads the same row
    assert AuditEvent.objects.get().object_id == "7"
