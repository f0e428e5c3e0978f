"""A photo's outcome and the reasons it must be taken again, with their words for patients and staff."""

from django.db import models
from django.utils.translation import gettext_lazy as _


# A photo's outcome. One rule (`photo_outcome`): a photo the model cannot judge is never suspected,
# whatever its score. The reason codes come from `ml` (ml/assessment.py); unknown codes get a
# generic text.
class PhotoOutcome(models.TextChoices):
    SUSPECTED = "suspected", "Suspected mpox"
    NOT_SUSPECTED = "not_suspected", "Not suspected"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"


def photo_outcome(*, probability, threshold, assessable):
    if not assessable:
        return PhotoOutcome.NOT_ASSESSABLE
    return PhotoOutcome.SUSPECTED if probability >= threshold else PhotoOutcome.NOT_SUSPECTED


class PhotoReason(models.TextChoices):
    """Why a photo must be taken again (the model could not judge it, or the worker could not decode
    it) or why its analysis failed.

    Stored as a code (`Photo.status_reason`) and put into words only when shown (`reason_for_patient`,
    `reason_for_clinician`), so each reader gets their own language. The first six are the
    assessability codes of `ml` (ml/assessment.py); a code `ml` adds later reads as NOT_ASSESSABLE
    until it gets words here.
    """

    TOO_DARK = "too_dark", "Too dark"
    TOO_BRIGHT = "too_bright", "Too bright"
    BLANK = "blank", "Blank"
    BLURRED = "blurred", "Blurred"
    NOT_SKIN = "not_skin", "Not skin"
    NO_LESION = "no_lesion", "No lesion recognised"
    NOT_ASSESSABLE = "not_assessable", "Not assessable"
    TIMED_OUT = "timed_out", "Analysis timed out"
    FAILED = "failed", "Analysis failed"
    UNREADABLE = "unreadable", "File damaged"

    @classmethod
    def from_model(cls, code):
        """The reason for an assessability code from `ml`."""
        known = code in cls.values and code not in (cls.TIMED_OUT, cls.FAILED, cls.UNREADABLE)
        return cls(code) if known else cls.NOT_ASSESSABLE


# A file whose pixels cannot be decoded: refused in the request when its header shows it
# (triage.images), else the worker's UNREADABLE reason.
DAMAGED = _("This photo seems to be damaged or only partly uploaded. Please take or choose it again.")

# reason -> (what the patient is asked to do, in their language; what the clinician is told)
REASON_TEXTS = {
    PhotoReason.TOO_DARK: (
        _("The photo is too dark to judge. Please take it again in good light."),
        "Too dark: the scored image (box or whole photo) is darker than almost every training photo.",
    ),
    PhotoReason.TOO_BRIGHT: (
        _("The photo is too bright (overexposed) to judge. Please take it again without flash glare."),
        "Overexposed: the scored image (box or whole photo) is brighter than almost every training photo.",
    ),
    PhotoReason.BLANK: (
        _("The photo looks blank. Please take it again with the skin area in view."),
        "Blank: almost no detail in the scored image (box or whole photo).",
    ),
    PhotoReason.BLURRED: (
        _("The photo is blurred. Please hold the phone steady, let it focus on the spot, and take it again."),
        "Blurred: the scored image (box or whole photo) has less fine detail than almost every training photo.",
    ),
    PhotoReason.NOT_SKIN: (
        _("We could not see skin in the photo. Please photograph the skin area with the spot, close up."),
        "Not a skin photo: too little skin-coloured area in the scored image.",
    ),
    PhotoReason.NO_LESION: (
        _(
            "We could not find a skin spot or sore in the photo. Please take it again close up, with the "
            "spot in the middle, or mark the spot on the photo."
        ),
        "No lesion recognised: the scored image is unlike the lesion photos the model learned from "
        "(healthy skin, another object, or a lesion type it has not seen).",
    ),
    PhotoReason.NOT_ASSESSABLE: (
        _("We could not judge this photo. Please take it again close up, in good light, with the spot in the middle."),
        "The model could not judge this photo.",
    ),
    PhotoReason.TIMED_OUT: (
        _("We could not check this photo in time. Please send it again; the clinic has been told."),
        "The analysis took too long; re-run it from the case page.",
    ),
    PhotoReason.FAILED: (
        _("Something went wrong while checking this photo. Please send it again; the clinic has been told."),
        "The analysis failed; re-run it from the case page once the cause is fixed.",
    ),
    PhotoReason.UNREADABLE: (
        DAMAGED,
        "The file's header was sound but its pixels could not be decoded (damaged or partly uploaded); "
        "nothing of it is kept.",
    ),
}


def reason_for_patient(reason):
    """What the patient is asked to do, in the active language."""
    return str(REASON_TEXTS[PhotoReason(reason)][0])


def reason_for_clinician(reason, detail=""):
    """What staff are told, with the technical detail of a failure when there is one."""
    text = REASON_TEXTS[PhotoReason(reason)][1]
    return f"{text} ({detail})" if detail else text
