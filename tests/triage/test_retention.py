"""Data retention: photo and heatmap files deleted after the retention period or on a patient's
request; rows, scores, decisions and the audit trail stay."""

from datetime import timedelta

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from portal.celery import app as celery_app
from triage.housekeeping import delete_expired_photo_files
from triage.models import Decision, FileDeletionReason, Outcome, Photo
from triage.services import delete_photo_files, record_decision
from triage.tasks import requeue_stalled_photos


def age_photo(photo, days):
    Photo.objects.filter(pk=photo.pk).update(created_at=timezone.now() - timedelta(days=days))


@pytest.mark.django_db
def test_files_past_retention_are_deleted_and_everything_else_is_kept(
    settings, client, clinician, prediction, stored_files
):
    settings.PHOTO_RETENTION_DAYS = 30
    photo = prediction.photo
    record_decision(
        case=photo.case, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.ISOLATION_ROOM
    )
    assert len(stored_files()) == 2  # photo and heatmap
    age_photo(photo, 29)
    assert delete_expired_photo_files() == 0
    assert len(stored_files()) == 2

    age_photo(photo, 31)
    assert delete_expired_photo_files() == 1
    assert stored_files() == []
    photo.refresh_from_db()
    prediction.refresh_from_db()
    assert photo.files_deleted_reason == FileDeletionReason.RETENTION and photo.files_deleted_at is not None
    assert photo.image.name == "" and prediction.heatmap.name == ""
    assert prediction.probability == 0.83 and photo.case.decisions.count() == 1
    event = AuditEvent.objects.get(action="delete_photo_files")
    assert (event.actor, event.object_id, event.detail) == (None, str(photo.pk), {"reason": "retention", "heatmaps": 1})
    assert delete_expired_photo_files() == 0  # already done: nothing twice

    client.force_login(clinician)
    assert client.get(reverse("photo-image", args=[photo.pk])).status_code == 410
    assert client.get(reverse("prediction-heatmap", args=[photo.pk, prediction.pk])).status_code == 410
    page = client.get(reverse("staff-case", args=[photo.case_id])).content.decode()
    assert "were deleted on" in page and "retention period ended" in page
    assert reverse("photo-image", args=[photo.pk]) not in page


@pytest.mark.django_db
def test_retention_zero_keeps_files(settings, prediction, stored_files):
    settings.PHOTO_RETENTION_DAYS = 0
    age_photo(prediction.photo, 3650)
    assert delete_expired_photo_files() == 0
    assert len(stored_files()) == 2


@pytest.mark.django_db
def test_a_deleted_photo_is_never_requeued_for_analysis(settings, photo, enqueued):
    settings.ANALYSIS_REQUEUE_AFTER_SECONDS = 0
    delete_photo_files(photos=[photo], reason=FileDeletionReason.PATIENT_REQUEST)
    Photo.objects.filter(pk=photo.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    assert requeue_stalled_photos() == 0


@pytest.mark.django_db
def test_admin_deletes_a_patients_photos_on_request_after_confirming(client, admin_user, prediction, stored_files):
    case = prediction.photo.case
    client.force_login(admin_user)
    changelist = reverse("admin:triage_case_changelist")
    form = {"action": "delete_photo_files_on_request", ACTION_CHECKBOX_NAME: [case.pk]}

    confirm = client.post(changelist, form)
    assert confirm.status_code == 200
    assert "1 photo" in confirm.content.decode() and "cannot be undone" in confirm.content.decode()
    assert len(stored_files()) == 2  # nothing deleted before confirming

    done = client.post(changelist, {**form, "confirmed": "yes"}, follow=True)
    assert "Deleted the files of 1 photos" in done.content.decode()
    assert stored_files() == []
    photo = Photo.objects.get(pk=prediction.photo_id)
    assert photo.files_deleted_reason == FileDeletionReason.PATIENT_REQUEST
    event = AuditEvent.objects.get(action="delete_photo_files")
    assert event.actor == admin_user and event.detail["reason"] == "patient_request"
    # The admin's photo page shows the deletion instead of a broken thumbnail.
    assert "Deleted " in client.get(reverse("admin:triage_photo_change", args=[photo.pk])).content.decode()


def test_beat_schedules_the_retention_sweep_under_the_name_workers_register(settings):
    celery_app.loader.import_default_modules()  # what a worker or beat does at start (CELERY_IMPORTS)
    entry = settings.CELERY_BEAT_SCHEDULE["delete-expired-photo-files"]
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"] == settings.RETENTION_SWEEP_INTERVAL_SECONDS
