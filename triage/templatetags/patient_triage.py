"""Patient page pieces: what the clinic decided about their visit (never a score)."""

from django import template

from triage.selectors import current_patient_decision

register = template.Library()


@register.simple_tag
def current_decision(case):
    """{% current_decision case as decision %}: the decision the patient should act on now, or None."""
    return current_patient_decision(case=case)
