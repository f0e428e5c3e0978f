"""A lab result changes the truth every performance figure is measured against, so the figure store
is refreshed after one is saved (triage cannot call model operations: it sits below them)."""

from django.db.models.signals import post_save
from django.dispatch import receiver

from modelops.tasks import refresh_stored_figures_on_commit
from triage.models import LabResult


@receiver(post_save, sender=LabResult)
def lab_result_saved(sender, **kwargs):
    refresh_stored_figures_on_commit()
