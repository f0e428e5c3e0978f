"""Staff page pieces: the header badge with the number of undecided flagged cases; photo reasons."""

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
