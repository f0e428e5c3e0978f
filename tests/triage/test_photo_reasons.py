"""A photo's reason is stored as a code and put into words when shown: in the patient's language on
their page, the live status and the API; in staff words (with a failure's technical cause) on the
case page, the queue and admin."""

import importlib

import pytest
from django.apps import apps
from django.urls import reverse

from triage import analysis
from triage.models import Photo, PhotoReason
from triage.tasks import analyse_photos_task

pytestmark = pytest.mark.django_db


def reject(photo, reason):
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.REJECTED, status_reason=reason)


def test_the_patient_reads_the_reason_in_their_language(client, patient, photo):
    reject(photo, PhotoReason.BLURRED)
    reference = photo.case.appointment.reference
    client.force_login(patient)

    english = client.get(reverse("appointment", args=[reference]), HTTP_ACCEPT_LANGUAGE="en").content.decode()
    spanish = client.get(reverse("appointment", args=[reference]), HTTP_ACCEPT_LANGUAGE="es").content.decode()
    status = client.get(reverse("appointment-photo-status", args=[reference]), HTTP_ACCEPT_LANGUAGE="es").json()

    assert "The photo is blurred." in english
    assert "La foto está borrosa." in spanish and "The photo is blurred." not in spanish
    assert status["photos"][0]["detail"].startswith("La foto está borrosa.")


def test_the_api_gives_the_code_and_the_words(client, patient, photo):
    reject(photo, PhotoReason.TOO_DARK)
    client.force_login(patient)
    url = reverse("api-my-appointment-photos", args=[photo.case.appointment.reference])

    (row,) = client.get(url, HTTP_ACCEPT_LANGUAGE="es").json()["results"]

    assert row["reason"] == "too_dark" and row["status"] == "rejected"
    assert row["detail"].startswith("La foto está demasiado oscura")


def test_a_batch_that_fails_for_good_keeps_the_results_of_its_finished_photos(
    photo, patient, make_upload, settings, monkeypatch
):
    """An earlier run rejected one photo of the batch; the batch then fails for good: the rejected
    photo keeps its reason (the patient is still asked to retake it), the other one fails."""
    from triage.services import accept_photo

    settings.ANALYSIS_MAX_RETRIES = 0
    other = accept_photo(
        case=photo.case, uploaded_by=patient, uploaded_file=make_upload(), body_site=Photo.BodySite.HANDS
    )
    reject(photo, PhotoReason.BLURRED)

    def broken(*args, **kwargs):
        raise RuntimeError("worker out of memory")

    monkeypatch.setattr(analysis, "analyse_photos", broken)
    analyse_photos_task.apply(args=[[photo.pk, other.pk]])
    photo.refresh_from_db()
    other.refresh_from_db()

    assert (photo.status, photo.status_reason) == (Photo.Status.REJECTED, PhotoReason.BLURRED)
    assert (other.status, other.status_reason) == (Photo.Status.FAILED, PhotoReason.FAILED)


def test_a_failed_analysis_tells_staff_the_cause_and_the_patient_only_what_to_do(
    client, patient, clinician, admin_user, photo, settings, monkeypatch
):
    settings.ANALYSIS_MAX_RETRIES = 0

    def broken(*args, **kwargs):
        raise RuntimeError("checkpoint file is truncated")

    monkeypatch.setattr(analysis, "analyse_photos", broken)
    analyse_photos_task.apply(args=[[photo.pk]])
    photo.refresh_from_db()

    assert (photo.status, photo.status_reason) == (Photo.Status.FAILED, PhotoReason.FAILED)
    assert photo.status_detail == "RuntimeError: checkpoint file is truncated"
    client.force_login(patient)
    patient_page = client.get(reverse("appointment", args=[photo.case.appointment.reference])).content.decode()
    assert "Something went wrong while checking this photo." in patient_page and "RuntimeError" not in patient_page
    client.force_login(clinician)
    case_page = client.get(reverse("staff-case", args=[photo.case_id])).content.decode()
    assert "The analysis failed; re-run it" in case_page and "RuntimeError: checkpoint file is truncated" in case_page
    queue = client.get(reverse("staff-queue")).content.decode()
    assert "Analysis failed" in queue
    client.force_login(admin_user)
    admin_page = client.get(reverse("admin:triage_photo_change", args=[photo.pk])).content.decode()
    assert (
        "The analysis failed; re-run it from the case page once the cause is fixed. (RuntimeError: checkpoint"
        in admin_page
    )


def test_the_migration_turns_stored_texts_into_codes(photo):
    migration = importlib.import_module("triage.migrations.0011_photo_status_reason")
    stored = [
        (
            Photo.Status.REJECTED,
            "The photo is too dark to analyse. Please take it again in good light.",
            "too_dark",
            "",
        ),
        (
            Photo.Status.REJECTED,
            "The photo is blurred. Please hold the phone steady, let it focus on the spot, and take it again.",
            "blurred",
            "",
        ),
        (Photo.Status.REJECTED, "We could not find a skin spot or sore in the photo.", "no_lesion", ""),
        (Photo.Status.REJECTED, "We could not judge this photo.", "not_assessable", ""),
        (Photo.Status.FAILED, "The analysis took too long. A clinician can run it again.", "timed_out", ""),
        (Photo.Status.FAILED, "The analysis failed (OSError). Staff have been told.", "failed", "OSError"),
        (Photo.Status.NO_MODEL, "No model is installed yet; the photo will be analysed once one is.", "", ""),
    ]
    photos = []
    for status, text, _, _ in stored:
        photo.pk = None
        photo.status, photo.status_detail = status, text
        photo.save()
        photos.append(photo.pk)

    migration.reasons_from_texts(apps, None)

    found = [Photo.objects.values_list("status_reason", "status_detail").get(pk=pk) for pk in photos]
    assert found == [(reason, detail) for _, _, reason, detail in stored]
