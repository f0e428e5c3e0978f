"""Consent wording. A record stores the version the patient saw; change the text, change the version."""

from django.utils.translation import gettext_lazy as _

CARE_TEXT_VERSION = "care-2026-11"
CARE_TEXT = _(
    "I agree that my answers and photos can be seen by clinic staff and analysed by the clinic's "
    "software to prepare for this visit."
)
RESEARCH_TEXT_VERSION = "research-2026-11"
RESEARCH_TEXT = _(
    "Optional: my photos, without my name, may also be used for research to improve this service. "
    "I can withdraw this at any time, and saying no does not change my care."
)
