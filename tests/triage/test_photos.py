import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageFile

from triage.analysis import read_photo
from triage.models import Photo, RoiSource
from triage.services import accept_photo, accept_photos, request_reanalysis

pytestmark = pytest.mark.django_db


@pytest.fixture
def upload_to(appointment, patient, private_storage, enqueued):
    """upload_to(file_or_files, roi=None, tap=None) -> photos, through the service, as `patient`."""

    def upload(files, roi=None, tap=None):
        files = files if isinstance(files, list) else [files]
        return accept_photos(
            case=appointment.case,
            uploaded_by=patient,
            uploaded_files=files,
            body_site=Photo.BodySite.HANDS,
            roi=roi,
            tap=tap,
        )

    return upload


def png_header_claiming(width, height):
    """A tiny PNG whose header claims huge dimensions (a decompression bomb's calling card)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def assert_refused(upload, file, fragment):
    with pytest.raises(ValidationError) as refused:
        upload(file)
    assert fragment in refused.value.messages[0]
    assert not Photo.objects.exists()


def test_accepted_photo_is_stored_as_sent_under_a_random_name_until_the_worker_normalises_it(
    upload_to, make_upload, make_image_bytes, stored_files
):
    sent = make_image_bytes(size=(300, 200), fmt="PNG")
    (photo,) = upload_to(make_upload(name="my-name.png", content=sent))

    assert photo.status == Photo.Status.RECEIVED
    assert (photo.width, photo.height) == (300, 200) and photo.sha256 == ""
    assert "my-name" not in photo.original.name and photo.original.name.endswith(".png")
    assert not photo.image and not photo.is_viewable
    assert [path.read_bytes() for path in stored_files()] == [sent]  # untouched: no decode, no re-encode

    read_photo(photo)  # the worker's first step

    photo.refresh_from_db()
    assert not photo.original and photo.image.name.endswith(".jpg") and len(photo.sha256) == 64
    assert stored_files() == [Path(photo.image.path)]  # the original is gone
    with photo.image.open("rb") as stored:
        assert Image.open(stored).format == "JPEG"


def test_the_request_decodes_no_pixels(client, patient, appointment, private_storage, enqueued, monkeypatch):
    """Pillow decodes in `ImageFile.load`; the upload request never calls it, for any format."""
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda image: decoded.append(image.format) or real_load(image))
    exif = Image.Exif()
    exif[0x0112] = 6
    files = []
    for name, fmt, options in [("a.jpg", "JPEG", {"exif": exif}), ("b.png", "PNG", {}), ("c.webp", "WEBP", {})]:
        buffer = io.BytesIO()
        Image.new("RGB", (400, 300), (200, 120, 90)).save(buffer, fmt, **options)
        files.append(SimpleUploadedFile(name, buffer.getvalue()))
    client.force_login(patient)

    response = client.post(
        reverse("appointment", args=[appointment.reference]),
        {"body_site": "hands", "consent_confirm": "on", "photos": files},
    )

    assert response.status_code == 302 and decoded == []
    assert sorted(Photo.objects.values_list("width", "height")) == [(300, 400), (400, 300), (400, 300)]


def test_analysis_is_queued_only_after_commit(
    appointment, patient, private_storage, make_upload, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        photo = accept_photo(
            case=appointment.case, uploaded_by=patient, uploaded_file=make_upload(), body_site=Photo.BodySite.FACE
        )
        assert enqueued == []

    assert enqueued == [(photo.pk, None)]


def test_non_image_is_refused(upload_to, make_upload):
    assert_refused(upload_to, make_upload(name="notes.txt", content=b"hello, not a photo"), "not a photo we can read")


def test_unsupported_format_is_refused(upload_to, make_upload):
    assert_refused(upload_to, make_upload(name="scan.gif", fmt="GIF"), "not a photo we can read")


def test_jpeg_cut_inside_its_header_is_refused_as_damaged(upload_to, make_upload, make_image_bytes):
    """A body cut short after a sound header is found by the worker (test_photo_worker.py)."""
    assert_refused(upload_to, make_upload(content=make_image_bytes(size=(400, 300))[:200]), "damaged")


def test_oversize_file_is_refused(upload_to, make_upload, settings):
    settings.PHOTO_MAX_BYTES = 1024 * 1024
    assert_refused(upload_to, make_upload(content=b"\xff" * (1024 * 1024 + 1)), "larger than 1 MB")


def test_decompression_bomb_is_refused_from_its_header(upload_to, make_upload):
    assert_refused(
        upload_to, make_upload(name="bomb.png", content=png_header_claiming(50_000, 50_000)), "too many pixels"
    )


def test_photo_over_the_pixel_limit_is_refused(upload_to, make_upload, settings):
    settings.PHOTO_MAX_PIXELS = 10_000
    assert_refused(upload_to, make_upload(size=(200, 100)), "too many pixels")


def test_too_small_photo_is_refused(upload_to, make_upload, settings):
    assert_refused(upload_to, make_upload(size=(settings.PHOTO_MIN_SIDE - 1, 300)), "too small")


def test_patient_box_is_kept_and_a_tiny_box_is_refused_not_dropped(upload_to, make_upload, stored_files):
    (boxed,) = upload_to(make_upload(size=(300, 200)), roi=(10, 20, 110, 120))
    assert (boxed.roi, boxed.roi_source) == ((10, 20, 110, 120), RoiSource.PATIENT)

    with pytest.raises(ValidationError, match="too small"):
        upload_to(make_upload(size=(300, 200)), roi=(10, 20, 15, 120))
    assert Photo.objects.count() == 1 and len(stored_files()) == 1


def test_patient_tap_becomes_a_box_sized_from_the_photo(upload_to, make_upload):
    from ml.boxes import box_from_tap

    (tapped,) = upload_to(make_upload(size=(800, 600)), tap=(700, 100))

    assert tapped.roi == box_from_tap(700, 100, (800, 600)) and tapped.roi_source == RoiSource.PATIENT_TAP
    x0, y0, x1, y1 = tapped.roi
    assert x1 - x0 == y1 - y0 and x1 <= 800 and y0 >= 0 and x0 <= 700 < x1 and y0 <= 100 < y1


@pytest.mark.parametrize("mark", [{"tap": (300, 10)}, {"tap": (-1, 10)}, {"roi": (0, 0, 50, 50), "tap": (5, 5)}])
def test_bad_taps_are_refused(upload_to, make_upload, stored_files, mark):
    with pytest.raises(ValidationError):
        upload_to(make_upload(size=(300, 200)), **mark)
    assert not Photo.objects.exists() and stored_files() == []


def test_a_mark_needs_a_single_photo(upload_to, make_upload):
    with pytest.raises(ValidationError, match="only be marked when uploading one photo"):
        upload_to([make_upload(), make_upload()], tap=(10, 10))


def test_box_outside_the_photo_is_refused(upload_to, make_upload, stored_files):
    with pytest.raises(ValidationError):
        upload_to(make_upload(size=(300, 200)), roi=(10, 20, 310, 120))
    assert not Photo.objects.exists() and stored_files() == []


def test_one_bad_file_saves_none_and_names_it(upload_to, make_upload, stored_files):
    files = [make_upload(name="good.jpg"), make_upload(name="broken.jpg", content=b"garbage")]

    with pytest.raises(ValidationError) as refused:
        upload_to(files)

    assert refused.value.messages == [
        "broken.jpg: This file is not a photo we can read. Please upload a JPEG, PNG or HEIC photo."
    ]
    assert not Photo.objects.exists() and stored_files() == []


def test_file_is_removed_when_the_database_write_fails(upload_to, make_upload, stored_files, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(Photo, "save", fail)
    with pytest.raises(RuntimeError):
        upload_to(make_upload())

    assert stored_files() == []


def test_upload_page_saves_photos_and_shows_errors(
    client, patient, appointment, private_storage, enqueued, make_upload
):
    client.force_login(patient)
    url = reverse("appointment", args=[appointment.reference])
    form = {"body_site": "hands", "consent_confirm": "on"}

    ok = client.post(url, {**form, "photos": [make_upload(name="a.jpg"), make_upload(name="b.png", fmt="PNG")]})
    refused = client.post(url, {**form, "photos": make_upload(name="c.txt", content=b"text")})

    assert ok.status_code == 302 and appointment.case.photos.count() == 2
    assert refused.status_code == 400 and "c.txt: This file is not a photo" in refused.content.decode()


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"roi_x0": -5, "roi_y0": 10, "roi_x1": 100, "roi_y1": 100}, "lies outside the photo"),
        ({"roi_x0": 10, "roi_y0": 10}, "could not be read"),
        ({"roi_x0": "abc", "roi_y0": 10, "roi_x1": 100, "roi_y1": 100}, "could not be read"),
        ({"tap_x": 5000, "tap_y": 10}, "tapped lies outside the photo"),
        ({"tap_x": 10}, "could not be read"),
        ({"tap_x": 10, "tap_y": 10, "roi_x0": 10, "roi_y0": 10, "roi_x1": 100, "roi_y1": 100}, "not both"),
    ],
)
def test_upload_page_shows_why_a_mark_is_refused(
    client, patient, appointment, private_storage, enqueued, make_upload, stored_files, fields, message
):
    client.force_login(patient)
    url = reverse("appointment", args=[appointment.reference])
    response = client.post(url, {"body_site": "hands", "consent_confirm": "on", "photos": make_upload(), **fields})

    assert response.status_code == 400  # refused uploads answer 400 (the form says why)
    assert message in response.content.decode()
    assert not Photo.objects.exists() and stored_files() == []


def test_upload_page_stores_a_tap(client, patient, appointment, private_storage, enqueued, make_upload):
    client.force_login(patient)
    url = reverse("appointment", args=[appointment.reference])
    response = client.post(
        url, {"body_site": "hands", "consent_confirm": "on", "photos": make_upload(), "tap_x": 20, "tap_y": 30}
    )

    assert response.status_code == 302
    photo = Photo.objects.get()
    assert photo.roi_source == RoiSource.PATIENT_TAP and photo.roi is not None


def test_tap_box_endpoint_returns_the_servers_box(client, patient):
    from ml.boxes import box_from_tap

    url = reverse("roi-tap-box")
    assert client.get(url, {"x": 10, "y": 10, "width": 400, "height": 300}).status_code == 302  # signed in only
    client.force_login(patient)

    ok = client.get(url, {"x": 390, "y": 150, "width": 400, "height": 300})
    outside = client.get(url, {"x": 400, "y": 150, "width": 400, "height": 300})
    garbled = client.get(url, {"x": "a", "y": 150, "width": 400, "height": 300})

    assert ok.json() == {"box": list(box_from_tap(390, 150, (400, 300)))}
    assert outside.status_code == 400 and "outside the photo" in outside.json()["error"]
    assert garbled.status_code == 400 and "whole numbers" in garbled.json()["error"]


def test_status_endpoint_shows_status_but_never_scores(client, patient, appointment, prediction):
    client.force_login(patient)

    response = client.get(reverse("appointment-photo-status", args=[appointment.reference]))

    assert response.json() == {
        "photos": [
            {
                "id": prediction.photo_id,
                "status": "analysed",
                "label": "Analysed",
                "reason": "",
                "detail": "",
                "settled": True,
                "retake_needed": False,
                "image_url": reverse("photo-image", args=[prediction.photo_id]),
            }
        ]
    }
    assert response["Cache-Control"] == "private, no-store"


def test_reanalysis_keeps_old_predictions_and_queues_with_clinician_box(
    clinician, prediction, enqueued, django_capture_on_commit_callbacks
):
    photo = prediction.photo
    with django_capture_on_commit_callbacks(execute=True):
        request_reanalysis(photo=photo, clinician=clinician, roi=(0, 0, 100, 100))

    photo.refresh_from_db()
    assert (photo.roi, photo.roi_source, photo.status) == ((0, 0, 100, 100), RoiSource.CLINICIAN, Photo.Status.RECEIVED)
    assert photo.predictions.active().get() == prediction
    assert enqueued[-1] == (photo.pk, clinician.pk)
