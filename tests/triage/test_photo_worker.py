"""The worker's first step on a photo (`analysis.read_photo`): decode the original once, orient it,
strip its metadata into the normalised JPEG, delete the original; damaged files end with a reason,
a run killed half-way is finished by the next, and the original is never served."""

import io

import pytest
from django.urls import reverse
from PIL import Image, ImageOps

from core.models import AuditEvent
from triage import analysis, events, selectors
from triage.models import Photo, PhotoReason, reason_for_patient
from triage.services import accept_photo, close_case, delete_photo_files

pytestmark = pytest.mark.django_db

GPS_LATITUDE = (51.0, 30.0, 0.0)


def phone_jpeg(orientation=6, size=(300, 200)):
    """A JPEG as phones write them: EXIF orientation, maker, GPS position, an ICC profile; the left
    third red so that the way it was turned shows."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x010F] = "PhoneMaker"
    exif.get_ifd(0x8825)[2] = GPS_LATITUDE
    image = Image.new("RGB", size, (10, 200, 30))
    image.paste((220, 20, 20), (0, 0, size[0] // 3, size[1]))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, icc_profile=b"\0" * 128)
    return buffer.getvalue()


@pytest.fixture
def upload(appointment, patient, private_storage, enqueued, make_upload):
    """upload(content) -> the photo as the request leaves it (original stored, not normalised)."""

    def send(content):
        return accept_photo(
            case=appointment.case,
            uploaded_by=patient,
            uploaded_file=make_upload(content=content),
            body_site="hands",
        )

    return send


@pytest.mark.parametrize("orientation", range(1, 9))
def test_worker_applies_orientation_strips_metadata_and_deletes_the_original(upload, stored_files, orientation):
    sent = phone_jpeg(orientation)
    photo = upload(sent)
    with photo.original.open("rb") as original:
        assert original.read() == sent  # GPS and all, until the worker has run
    expected = ImageOps.exif_transpose(Image.open(io.BytesIO(sent)))
    assert (photo.width, photo.height) == expected.size  # from the header, before any decode

    pixels = analysis.read_photo(photo)

    photo.refresh_from_db()
    assert not photo.original and len(stored_files()) == 1  # the original is deleted
    with photo.image.open("rb") as stored:
        image = Image.open(stored)
        image.load()
    assert image.size == pixels.size == expected.size
    assert not image.getexif() and "exif" not in image.info and "icc_profile" not in image.info
    assert b"PhoneMaker" not in photo.image.open("rb").read()
    assert image.getpixel((2, 2)) == pytest.approx(expected.convert("RGB").getpixel((2, 2)), abs=12)
    assert pixels.getpixel((2, 2)) == expected.convert("RGB").getpixel((2, 2))


def test_a_damaged_body_behind_a_sound_header_ends_with_a_reason_not_stuck(
    upload, stored_files, make_image_bytes, django_capture_on_commit_callbacks
):
    retakes = []
    events.photo_retake_needed.connect(lambda photo, **_: retakes.append(photo.pk), weak=False, dispatch_uid="t")
    photo = upload(make_image_bytes(size=(400, 300))[:-600])  # the header passes; the pixels stop short
    assert photo.status == Photo.Status.RECEIVED

    with django_capture_on_commit_callbacks(execute=True):
        assert analysis.analyse_photos([photo.pk]) == []  # refused before any model is needed
    events.photo_retake_needed.disconnect(dispatch_uid="t")

    photo.refresh_from_db()
    assert (photo.status, photo.status_reason) == (Photo.Status.REJECTED, PhotoReason.UNREADABLE)
    assert photo.needs_retake and photo.is_settled and "truncated" in photo.status_detail
    assert photo.patient_message == reason_for_patient(PhotoReason.UNREADABLE)
    assert "damaged or only partly uploaded" in photo.patient_message
    assert retakes == [photo.pk]
    assert not photo.original and not photo.image and stored_files() == []  # nothing of it is kept
    assert analysis.analyse_photos([photo.pk]) == []  # a redelivered task leaves it as it is


def test_the_original_is_never_served(client, admin_client, patient, upload):
    photo = upload(phone_jpeg())
    admin_page = admin_client.get(reverse("admin:triage_photo_change", args=[photo.pk])).content.decode()
    assert photo.original.name not in admin_page and "being prepared" in admin_page
    client.force_login(patient)

    response = client.get(reverse("photo-image", args=[photo.pk]))
    page = client.get(reverse("appointment", args=[photo.case.appointment.reference])).content.decode()

    assert response.status_code == 404 and b"being prepared" in response.content
    assert reverse("photo-image", args=[photo.pk]) not in page and "Preparing your photo" in page
    assert AuditEvent.objects.filter(action="view_photo", actor=patient).count() == 1  # still audited

    analysis.read_photo(photo)
    shown = client.get(reverse("photo-image", args=[photo.pk]))
    assert shown.status_code == 200 and b"PhoneMaker" not in b"".join(shown.streaming_content)


def test_a_run_killed_after_recording_the_jpeg_is_finished_by_the_next(upload, stored_files, monkeypatch):
    photo = upload(phone_jpeg())

    def killed(_photo):
        raise SystemExit("worker killed")

    monkeypatch.setattr(analysis, "_delete_original", killed)
    with pytest.raises(SystemExit):
        analysis.read_photo(photo)
    monkeypatch.undo()
    photo = Photo.objects.get(pk=photo.pk)  # the next run reloads it
    made = photo.image.name
    assert made and photo.original and len(stored_files()) == 2

    analysis.read_photo(photo)

    photo.refresh_from_db()
    assert photo.image.name == made and not photo.original and len(stored_files()) == 1


def test_a_run_killed_before_its_commit_leaves_no_second_jpeg(upload, stored_files, monkeypatch):
    photo = upload(phone_jpeg())
    storage = Photo.image.field.storage
    real_save = storage.save

    def save_then_die(name, content, **kwargs):
        real_save(name, content, **kwargs)
        raise SystemExit("worker killed")

    monkeypatch.setattr(storage, "save", save_then_die)
    with pytest.raises(SystemExit):
        analysis.read_photo(photo)
    monkeypatch.undo()
    photo = Photo.objects.get(pk=photo.pk)
    assert not photo.image and photo.original

    analysis.read_photo(photo)

    photo.refresh_from_db()
    assert [path.name for path in stored_files()] == [photo.image.name.rsplit("/", 1)[1]]


def test_photos_of_a_cancelled_appointment_are_stripped_though_not_analysed(upload, stored_files):
    photo = upload(phone_jpeg())
    close_case(case=photo.case)

    assert analysis.analyse_photos([photo.pk]) == []

    photo.refresh_from_db()
    assert photo.status == Photo.Status.RECEIVED and photo.is_viewable and not photo.original
    assert len(stored_files()) == 1


def test_a_lost_task_of_a_cancelled_appointment_is_queued_again_to_strip_its_original(upload, stored_files):
    """The broker lost the task, then the appointment was cancelled: the sweep queues the photo once
    more, its run strips the original without analysing it, and the next sweep leaves it alone."""
    photo = upload(phone_jpeg())
    Photo.objects.filter(pk=photo.pk).update(queued_at=None)  # never handed to the broker
    close_case(case=photo.case)

    assert [p.pk for p in selectors.photos_to_requeue()] == [photo.pk]
    assert analysis.analyse_photos([photo.pk]) == []

    photo.refresh_from_db()
    assert not photo.original and photo.is_viewable and len(stored_files()) == 1
    Photo.objects.filter(pk=photo.pk).update(queued_at=None)
    assert selectors.photos_to_requeue() == []  # nothing left to strip, and never analysed


def test_deleting_a_photos_files_deletes_an_original_not_yet_normalised(upload, stored_files):
    photo = upload(phone_jpeg())

    assert delete_photo_files(photos=[photo], reason="patient_request") == 1

    photo.refresh_from_db()
    assert stored_files() == [] and not photo.original and photo.files_deleted_at is not None


def test_a_storage_fault_is_retried_never_taken_for_a_damaged_file(upload, stored_files, monkeypatch):
    photo = upload(phone_jpeg())

    def unreachable(*args, **kwargs):
        raise ConnectionResetError("storage unreachable")

    monkeypatch.setattr(Photo.original.field.storage, "open", unreachable)
    with pytest.raises(ConnectionResetError):  # the task's retry policy handles it
        analysis.read_photo(photo)

    photo.refresh_from_db()
    assert photo.status == Photo.Status.RECEIVED and not photo.status_reason
    assert photo.original and len(stored_files()) == 1  # nothing lost
