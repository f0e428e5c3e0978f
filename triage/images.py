"""Checking uploads from their headers (the request) and decoding them (the worker): Pillow, no
database, no storage.

Every refusal is a ValidationError whose message a patient can act on, in the active language.
"""

import io
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pi_heif import register_heif_opener
from PIL import ExifTags, Image, ImageFile, UnidentifiedImageError

from ml.boxes import box_from_tap
from triage.models.reasons import DAMAGED

# iPhones save HEIC. pi-heif is pillow-heif's decode-only build (libheif + libde265, no GPL encoder).
register_heif_opener()
# Only these decoders ever see an upload (fewer parsers, smaller attack surface).
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "HEIF")
# A truncated file is refused, never silently padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False

JPEG_QUALITY = 92
# A box smaller than this (pixels of the photo) is refused; the ROI editor gets it from here and
# takes a smaller drag for a tap.
MIN_ROI_SIDE = 8
# The request fields that mark the lesion: a box, or a tap (the web form and the API).
BOX_FIELDS = ("roi_x0", "roi_y0", "roi_x1", "roi_y1")
TAP_FIELDS = ("tap_x", "tap_y")

NOT_AN_IMAGE = gettext_lazy("This file is not a photo we can read. Please upload a JPEG, PNG or HEIC photo.")
EMPTY = gettext_lazy("This file is empty. Please choose a photo.")


# EXIF orientation -> the transpose that makes the photo upright (what ImageOps.exif_transpose does).
UPRIGHT = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "HEIF": "heic"}


@dataclass(frozen=True)
class UploadHeader:
    """What an upload's header says: its format and its upright size (EXIF orientation applied)."""

    format: str
    width: int
    height: int

    @property
    def extension(self):
        return EXTENSIONS[self.format]


def read_header(uploaded_file) -> UploadHeader:
    """Check an upload from its size and header alone: no pixel is decoded (Pillow opens lazily).

    Refuses an empty or oversized file, a file that is not one of ACCEPTED_FORMATS by its content,
    a header too damaged to read, and too many or too few pixels by the declared size (a
    decompression bomb is refused before anything is decoded). A body damaged after a sound header
    is found by the worker (`decode_upright`).
    """
    _check_byte_size(uploaded_file.size)
    uploaded_file.seek(0)
    try:
        with _opened(uploaded_file) as image:
            _check_dimensions(*image.size)
            width, height = image.size
            if _orientation(image) in (5, 6, 7, 8):  # turned a quarter: upright width and height swap
                width, height = height, width
            header = UploadHeader(format=image.format, width=width, height=height)
    finally:
        uploaded_file.seek(0)
    return header


def decode_upright(file) -> Image.Image:
    """Decode a stored upload (the worker, once per photo): upright by the orientation its header
    gave `read_header`, flattened onto white, RGB, with no metadata. Refused as damaged when the
    pixels cannot be decoded."""
    with _opened(file) as image:
        orientation = _orientation(image)
        image.load()
        if orientation in UPRIGHT:
            image = image.transpose(UPRIGHT[orientation])
        return _flat_rgb(image)


@contextmanager
def _opened(file):
    """The image, opened lazily by its content, with Pillow's errors as refusals a patient can act on."""
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; `_check_dimensions` refuses
    # from the header first, so both only back it up.
    Image.MAX_IMAGE_PIXELS = settings.PHOTO_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(file, formats=ACCEPTED_FORMATS) as image:
                yield image
    except UnidentifiedImageError:
        raise ValidationError(NOT_AN_IMAGE, code="not_an_image")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(_too_many_pixels_message(), code="too_many_pixels")
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ValidationError(DAMAGED, code="damaged")


def _orientation(image):
    """The EXIF orientation tag as read from the header. `Image.getexif` itself, because PNG's own
    would decode the pixels to look for an eXIf chunk after them."""
    return Image.Image.getexif(image).get(ExifTags.Base.Orientation, 1)


def encode_jpeg(image, quality=JPEG_QUALITY) -> bytes:
    """A fresh JPEG of the pixels alone: no EXIF, ICC or XMP is carried over."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def validate_roi(roi, width, height):
    """Return the box as a tuple of ints, or None when absent.

    Coordinates are pixels of the upright (EXIF-oriented) photo: (x0, y0, x1, y1).
    """
    if roi is None:
        return None
    x0, y0, x1, y1 = (int(value) for value in roi)
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise ValidationError(
            _("The box drawn around the lesion lies outside the photo. Please draw it again."), code="roi"
        )
    if x1 - x0 < MIN_ROI_SIDE or y1 - y0 < MIN_ROI_SIDE:
        raise ValidationError(
            _("The box drawn around the lesion is too small to use. Please tap the lesion or draw a larger box."),
            code="roi",
        )
    return (x0, y0, x1, y1)


def box_for_tap(tap, width, height):
    """The box a tap (x, y) on the lesion stands for (rule: ml.boxes.box_from_tap), or None."""
    if tap is None:
        return None
    try:
        return box_from_tap(int(tap[0]), int(tap[1]), (width, height))
    except ValueError:
        raise ValidationError(_("The place tapped lies outside the photo. Please tap the lesion again."), code="roi")


def _check_byte_size(size):
    if not size:
        raise ValidationError(EMPTY, code="empty")
    if size > settings.PHOTO_MAX_BYTES:
        limit_mb = settings.PHOTO_MAX_BYTES // (1024 * 1024)
        raise ValidationError(
            _(
                "This photo is larger than %(limit)s MB. Please upload a smaller photo, "
                "for example by choosing a lower resolution in your camera settings."
            )
            % {"limit": limit_mb},
            code="too_large",
        )


def _check_dimensions(width, height):
    if width * height > settings.PHOTO_MAX_PIXELS:
        raise ValidationError(_too_many_pixels_message(), code="too_many_pixels")
    if min(width, height) < settings.PHOTO_MIN_SIDE:
        raise ValidationError(
            _(
                "This photo is too small (%(width)s×%(height)s pixels). Please upload a photo "
                "at least %(side)s pixels wide and high."
            )
            % {"width": width, "height": height, "side": settings.PHOTO_MIN_SIDE},
            code="too_small",
        )


def _too_many_pixels_message():
    megapixels = settings.PHOTO_MAX_PIXELS // 1_000_000
    limit = (
        _("%(count)s megapixels") % {"count": megapixels}
        if megapixels
        else _("%(count)s pixels") % {"count": settings.PHOTO_MAX_PIXELS}
    )
    return _("This photo has too many pixels (more than %(limit)s). Please upload a smaller photo.") % {"limit": limit}


def _flat_rgb(image):
    """Flatten onto white; the result is a new image that carries no metadata."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    clean = Image.new("RGB", image.size)
    clean.paste(image.convert("RGB"))
    return clean
