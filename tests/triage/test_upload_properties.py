"""Property-based test of the upload page (hypothesis): whatever a client posts — arbitrary bytes, valid
images of any mode, size, format, EXIF and file name, any lesion-box fields — the answer is a redirect
(stored) or a 400 naming the reason, never a 500; nothing is half-saved; once the worker's first step
has run, stored photos carry no metadata (or were refused as damaged)."""

import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils.html import escape
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from PIL import Image

from triage.analysis import read_photo
from triage.models import Photo, PhotoReason

pytestmark = pytest.mark.django_db

MODES = ["RGB", "RGBA", "L", "LA", "P", "CMYK", "1", "I", "I;16", "F"]
FORMATS = ["JPEG", "PNG", "WEBP", "GIF", "TIFF", "BMP"]
GPS_IFD = 0x8825


@st.composite
def images(draw):
    mode, fmt = draw(st.sampled_from(MODES)), draw(st.sampled_from(FORMATS))
    size = (draw(st.integers(1, 200)), draw(st.integers(1, 200)))
    image = Image.new(mode, size, draw(st.integers(0, 255)))
    exif = Image.Exif()
    exif[0x0112] = draw(st.integers(0, 9))  # orientation, including invalid values
    exif[0x010F] = "PhoneMaker"
    exif[0x9003] = "2024:01:02 03:04:05"
    exif.get_ifd(GPS_IFD).update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=fmt, exif=exif.tobytes())
    except (OSError, ValueError, KeyError, TypeError):  # this format cannot hold this mode: plain PNG of it
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


contents = st.one_of(st.binary(max_size=2048), images(), images().map(lambda data: data[: len(data) // 2]))
# "." and ".." are left out: Django's SimpleUploadedFile refuses to be built with them, before any request
names = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=40).map(
    lambda name: name.replace("/", "_")
).filter(lambda name: name not in (".", "..")) | st.sampled_from(
    ["photo.jpg", "IMG_0001.HEIC", "x.png.exe", ".jpg", "a" * 300 + ".jpg"]
)
box_value = st.one_of(st.none(), st.integers(-1000, 5000).map(str), st.sampled_from(["", "1e9", "abc", "-0", "3.5"]))


@pytest.fixture
def upload_page(client, patient, appointment, private_storage, enqueued, settings):
    settings.PHOTO_MAX_PER_APPOINTMENT = 100_000
    client.force_login(patient)
    return reverse("appointment", args=[appointment.reference])


@hypothesis_settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    files=st.lists(st.tuples(names, contents), min_size=1, max_size=3),
    box=st.fixed_dictionaries({f"roi_{key}": box_value for key in ("x0", "y0", "x1", "y1")}),
)
def test_any_upload_is_stored_cleanly_or_refused_with_a_reason(client, upload_page, stored_files, files, box):
    before = set(Photo.objects.values_list("pk", flat=True))
    form = {
        "body_site": "hands",
        "consent_confirm": "on",
        **{key: value for key, value in box.items() if value is not None},
    }
    uploads = [SimpleUploadedFile(name, content, "image/jpeg") for name, content in files]

    response = client.post(upload_page, {**form, "photos": uploads})

    new_photos = Photo.objects.exclude(pk__in=before)
    assert response.status_code in (302, 400), response.status_code
    if response.status_code == 400:
        assert not new_photos.exists()
        if all(value is None for value in box.values()):  # the box fields' messages are issue-roi's part
            page = response.content.decode()
            messages = [message for errors in response.context["form"].errors.values() for message in errors]
            assert messages and all(escape(message) in page for message in messages), messages
    else:
        assert new_photos.count() == len(files)
    stored = (
        {str(path.relative_to(stored_files()[0].parents[2])) for path in stored_files()} if stored_files() else set()
    )
    recorded = {name for names in Photo.objects.values_list("original", "image") for name in names if name}
    assert stored == recorded  # nothing half-saved: every stored file is a photo's, every photo's is stored
    for photo in new_photos:
        if read_photo(photo) is None:  # the worker's first step found the pixels damaged behind a sound header
            photo.refresh_from_db()
            assert photo.status_reason == PhotoReason.UNREADABLE and not photo.original and not photo.image
            continue
        with photo.image.open("rb") as handle:
            image = Image.open(handle)
            assert image.format == "JPEG"
            assert not image.getexif() and not ({"exif", "icc_profile", "xmp", "photoshop"} & set(image.info))
        assert not photo.original  # the original (metadata and all) is deleted once stripped
