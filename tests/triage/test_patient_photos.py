"""The patient's photo upload: HEIC from iPhones, the JSON answer the progress bars read, the retake link."""

import io

import pillow_heif
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from triage.analysis import read_photo
from triage.models import Photo, PhotoReason
from triage.services import accept_photo

pytestmark = pytest.mark.django_db


def heic_bytes(size=(320, 240), color=(190, 140, 120)):
    """A real HEIC file, written by pillow-heif's encoder (a test-only dependency)."""
    buffer = io.BytesIO()
    pillow_heif.from_pillow(Image.new("RGB", size, color)).save(buffer, quality=90)
    return buffer.getvalue()


def test_heic_photo_is_accepted_and_stored_as_a_clean_jpeg(appointment, patient, private_storage, enqueued):
    upload = SimpleUploadedFile("IMG_0001.HEIC", heic_bytes(), content_type="image/heic")

    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=upload, body_site="hands")
    assert (photo.width, photo.height) == (320, 240) and photo.original.name.endswith(".heic")
    read_photo(photo)

    with Image.open(photo.image.open("rb")) as stored:
        assert stored.format == "JPEG" and not stored.getexif()


def test_upload_answers_json_for_the_progress_bars(
    client, patient, appointment, private_storage, enqueued, make_upload
):
    client.force_login(patient)
    url = reverse("appointment", args=[appointment.reference])
    form = {"body_site": "trunk", "consent_confirm": "on"}

    sent = client.post(url, {**form, "photos": make_upload()}, HTTP_ACCEPT="application/json")
    refused = client.post(
        url, {**form, "photos": make_upload("notes.jpg", content=b"%PDF-1.7")}, HTTP_ACCEPT="application/json"
    )

    photo = Photo.objects.get()
    assert sent.status_code == 201 and sent.json() == {"photos": [photo.pk], "errors": []}
    assert refused.status_code == 400 and refused.json()["photos"] == []
    assert "notes.jpg: This file is not a photo we can read" in refused.json()["errors"][0]


def test_a_photo_to_retake_offers_a_retake_that_keeps_the_appointment(client, patient, photo):
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.REJECTED, status_reason=PhotoReason.TOO_DARK)
    client.force_login(patient)
    url = reverse("appointment", args=[photo.case.appointment.reference])

    page = client.get(url).content.decode()
    assert f'href="?retake={photo.pk}#upload"' in page and "The photo is too dark to judge." in page

    assert client.get(url, {"retake": "not-a-number"}).status_code == 200
    retake = client.get(url, {"retake": photo.pk})
    assert "Take the photo again" in retake.content.decode()
    assert retake.context["form"]["body_site"].value() == photo.body_site


def test_upload_form_opens_the_back_camera_and_takes_heic(client, patient, appointment):
    client.force_login(patient)
    page = client.get(reverse("appointment", args=[appointment.reference])).content.decode()

    assert 'capture="environment"' in page and 'accept="image/*,.heic,.heif"' in page
    assert "Before you open the camera" in page and "img/photo-guide/light.svg" in page
