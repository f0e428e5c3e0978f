"""What admins see of the running system: worker heartbeats, queue lengths (read from the real
broker) and the oldest photo waiting for analysis."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from core.models import WorkerHeartbeat
from core.services import record_worker_heartbeat
from portal.celery import app as celery_app
from triage.models import Photo
from triage.tasks import analyse_photos_task


@pytest.fixture
def empty_queues():
    celery_app.control.purge()
    yield
    celery_app.control.purge()


@pytest.mark.django_db
def test_admin_sees_workers_queue_lengths_and_the_oldest_waiting_photo(client, admin_user, photo, empty_queues):
    record_worker_heartbeat(hostname="inference@a", queues=["inference"], pid=10, concurrency=2)
    record_worker_heartbeat(hostname="light@b", queues=["default"], pid=11, concurrency=4)
    WorkerHeartbeat.objects.filter(hostname="light@b").update(
        last_seen_at=timezone.now() - timedelta(seconds=4 * settings.WORKER_HEARTBEAT_SECONDS)
    )
    record_worker_heartbeat(hostname="gone@c", queues=["default"], pid=12, concurrency=1, stopped=True)
    for _ in range(3):  # no worker runs here: they wait in Redis
        analyse_photos_task.apply_async(args=[[photo.pk]])
    Photo.objects.filter(pk=photo.pk).update(created_at=timezone.now() - timedelta(minutes=42))

    client.force_login(admin_user)
    page = client.get(reverse("admin:core_workerheartbeat_changelist")).content.decode()
    assert '<td data-queue="inference">3</td>' in page
    assert '<td data-queue="default">0</td>' in page
    assert f"Photo {photo.pk}</a>" in page and "waiting 42" in page
    rows = {worker.hostname: worker.state for worker in WorkerHeartbeat.objects.all()}
    assert rows == {"inference@a": "up", "light@b": "stale", "gone@c": "stopped"}
    for hostname, state in rows.items():
        assert hostname in page and state in page


@pytest.mark.django_db
def test_a_restarted_worker_gets_a_new_start_time(db):
    first = record_worker_heartbeat(hostname="w@h", queues=["inference"], pid=1, concurrency=1)
    same = record_worker_heartbeat(hostname="w@h", queues=["inference"], pid=1, concurrency=1)
    assert same.started_at == first.started_at and same.last_seen_at > first.last_seen_at
    restarted = record_worker_heartbeat(hostname="w@h", queues=["inference"], pid=2, concurrency=1)
    assert restarted.started_at > first.started_at


@pytest.mark.django_db
def test_the_operations_page_says_when_the_broker_is_unreachable(client, admin_user, monkeypatch):
    monkeypatch.setattr(celery_app.conf, "broker_read_url", "redis://127.0.0.1:1/0")
    client.force_login(admin_user)
    page = client.get(reverse("admin:core_workerheartbeat_changelist")).content.decode()
    assert "The broker could not be reached" in page
