"""Writes of the shared plumbing: the audit trail's one writer and the worker heartbeat."""

from django.utils import timezone

from core.http import client_address
from core.models import AuditEvent, WorkerHeartbeat


def audit(*, actor, action, obj, allowed=True, request=None, reference=None, **detail) -> AuditEvent:
    """Record who did or tried to do what. `obj` may be None when the object does not exist (or is a
    list); `reference` is the booking reference asked for, else `obj.audit_reference` (a case and the
    records of a case name their booking reference so; this module knows no domain app)."""
    if reference is None:
        reference = getattr(obj, "audit_reference", "")
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        action=action,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=str(obj.pk) if obj is not None else "",
        case_reference=reference[:40],
        allowed=allowed,
        detail=detail,
        ip_address=client_address(request) if request is not None else None,
    )


def record_worker_heartbeat(*, hostname, queues, pid, concurrency, stopped=False) -> WorkerHeartbeat:
    """Upsert this worker's row: a new start time when its pid changes, stopped at a warm shutdown."""
    now = timezone.now()
    heartbeat = WorkerHeartbeat.objects.filter(hostname=hostname).first() or WorkerHeartbeat(hostname=hostname)
    if heartbeat.pid != pid:
        heartbeat.started_at = now
    heartbeat.queues, heartbeat.pid, heartbeat.concurrency = ",".join(queues), pid, concurrency
    heartbeat.last_seen_at = now
    heartbeat.stopped_at = now if stopped else None
    heartbeat.save()
    return heartbeat
