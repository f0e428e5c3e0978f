"""Formatting of performance figures: a proportion with its 95 % CI and counts, a score, NaN as a dash."""

import math

from django import template

register = template.Library()


@register.filter
def share(figure):
    """{"value", "ci95", "successes", "n"} -> "83% (95% CI 55–95%; 10/12)"; a dash when n is 0."""
    if not figure or not figure.get("n"):
        return "—"
    low, high = figure["ci95"]
    return f"{figure['value']:.0%} (95% CI {low:.0%}–{high:.0%}; {figure['successes']}/{figure['n']})"


@register.filter
def number(value, digits=3):
    """A float to `digits` decimals; a dash for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:.{int(digits)}f}"
