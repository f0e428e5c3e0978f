"""Staff page pieces: the header badge with the number of undecided flagged cases."""
from django import template
from django.conf import settings

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
