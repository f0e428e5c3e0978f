"""Staff page pieces: the header badge with the number of undecided flagged cases; photo reasons; prevalences."""

from django import template
from django.conf import settings

from triage.models import PhotoReason
from triage.permissions import staff_site_ids
from triage.selectors import flagged_undecided_count

register = template.Library()


@register.inclusion_tag("triage/_flagged_badge.html", takes_context=True)
def flagged_badge(context):
    """Rendered with the page; htmx then re-fetches it every STAFF_BADGE_POLL_SECONDS."""
    user = context["request"].user
    return {
        "flagged_undecided": flagged_undecided_count(site_ids=staff_site_ids(user)),
        "poll_seconds": settings.STAFF_BADGE_POLL_SECONDS,
    }


@register.filter
def photo_reason(code):
    """A photo's reason code (`Photo.status_reason`) as its short label, e.g. "Too dark"."""
    return PhotoReason(code).label if code else ""


@register.filter
def percent(share):
    """A share (0-1) as a percentage with up to one decimal, e.g. 0.1 -> "10", 0.005 -> "0.5"."""
    return f"{share * 100:.1f}".removesuffix(".0")
