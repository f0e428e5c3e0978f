"""Model operations' Celery task: keep the figure store filled for the performance pages."""

from celery import shared_task
from django.db import transaction

from modelops import charts


@shared_task(ignore_result=True)
def refresh_stored_figures_task():
    charts.refresh_stored_figures()


def refresh_stored_figures_on_commit() -> None:
    """Queue a refresh once the current transaction commits (none if it rolls back)."""
    transaction.on_commit(refresh_stored_figures_task.delay)
