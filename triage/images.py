"""Checking and normalising uploaded photos (Pillow and NumPy): no database, no storage.

Every refusal is a ValidationError whose message a patient can act on, in the active language.
"""

import hashlib
import io
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from pi_heif import register_heif_opener
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ml.boxes import box_from_tap

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
DAMAGED = gettext_lazy("This photo seems to be damaged or only partly uploaded. Please take or choose it again.")
EMPTY = gettext_lazy("This file is empty. Please choose a photo.")


@dataclass(frozen=True)
class NormalisedPhoto:
    """A re-encoded JPEG with orientation applied and no metadata at all."""

    content: bytes
    width: int
    height: int
    sha256: str


def normalise_photo(uploaded_file) -> NormalisedPhoto:
    """Validate an upload and re-encode its pixels into a fresh, metadata-free JPEG."""
    _check_byte_size(uploaded_file.size)
    uploaded_file.seek(0)
    data = uploaded_file.read()
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; we refuse
    # ourselves from the header first, so both only back up the check below.
    Image.MAX_IMAGE_PIXELS = settings.PHOTO_MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
                _check_dimensions(*image.size)
                image.load()
                pixels = _upright_rgb(image)
    except UnidentifiedImageError:
        raise ValidationError(NOT_AN_IMAGE, code="not_an_image")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(_too_many_pixels_message(), code="too_many_pixels")
    except (OSError, SyntaxError, ValueError, EOFError):
        raise ValidationError(DAMAGED, code="damaged")

    content = encode_jpeg(pixels)
    return NormalisedPhoto(
        content=content, width=pixels.width, height=pixels.height, sha256=hashlib.sha256(content).hexdigest()
    )


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


def _upright_rgb(image):
    """Apply EXIF orientation and flatten onto white; the result carries no metadata."""
    upright = ImageOps.exif_transpose(image)
    if upright.mode in ("RGBA", "LA", "PA") or "transparency" in upright.info:
        rgba = upright.convert("RGBA")
        flat = Image.new("RGB", rgba.size, "white")
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    clean = Image.new("RGB", upright.size)
    clean.paste(upright.convert("RGB"))
    return clean
