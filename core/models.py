from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did or saw what, when: every read of patient data and every denial. Append-only."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=60)
    case_reference = models.CharField(
        max_length=40, blank=True, db_index=True, help_text="Booking reference of the case concerned (or asked for)."
    )
    allowed = models.BooleanField(default=True)
    detail = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        db_table = "triage_auditevent"  # made by triage before the plumbing had an app of its own
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor} {self.action} {self.object_type}:{self.object_id}"


class WorkerHeartbeat(models.Model):
    """The last sign of life of one Celery worker (its main process), written every
    WORKER_HEARTBEAT_SECONDS; what admins look at to see which workers are up."""

    hostname = models.CharField(max_length=200, unique=True)
    queues = models.CharField(max_length=200)
    pid = models.PositiveIntegerField()
    concurrency = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    stopped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "triage_workerheartbeat"  # made by triage before the plumbing had an app of its own
        ordering = ["hostname"]

    def __str__(self):
        return self.hostname

    @property
    def state(self):
        """ "stopped" (warm shutdown), "stale" (silent for three heartbeat periods) or "up"."""
        if self.stopped_at is not None:
            return "stopped"
        if self.last_seen_at < timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS):
            return "stale"
        return "up"
