"""A waiting time in words for patients ("30 minutes", "2 hours"), in the active language."""

from datetime import timedelta

from django import template
from django.utils.translation import ngettext

register = template.Library()


@register.filter
def duration_in_words(value: timedelta) -> str:
    """Whole hours when it is a whole number of hours, else minutes (rounded up, at least one)."""
    minutes = max(1, -(-int(value.total_seconds()) // 60))
    if minutes % 60 == 0:
        hours = minutes // 60
        return ngettext("%(count)d hour", "%(count)d hours", hours) % {"count": hours}
    return ngettext("%(count)d minute", "%(count)d minutes", minutes) % {"count": minutes}
