"""The figure store (issue 23: the performance page's first view took seconds, most of it importing
matplotlib and scikit-learn and drawing). A worker draws and fits the unfiltered pages' figures when
their data changes; any web process then serves the page from the database without those libraries."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from modelops import tasks
from modelops.models import StoredFigure
from tests.modelops.test_performance import HEAVY, clinician_client, history, refuse_heavy_imports  # noqa: F401
from triage.models import LabResult

pytestmark = pytest.mark.django_db


def test_a_web_process_serves_what_the_worker_stored_without_drawing_or_fitting(
    settings,
    history,  # noqa: F811
    clinician_client,  # noqa: F811
    monkeypatch,
):
    settings.HISTORY_MODEL_MIN_CONFIRMED_CASES = 10
    tasks.refresh_stored_figures_task()  # run by a worker after the data changed
    assert StoredFigure.objects.count() == 4  # ROC, reliability, score distribution, history + image fit
    cache.clear()  # another web process: nothing of the worker's in this one's memory

    refuse_heavy_imports(monkeypatch)
    page = clinician_client.get(reverse("staff-performance")).content.decode()
    assert page.count("data:image/png;base64,") == 3
    assert "Out-of-fold AUC" in page
    assert StoredFigure.objects.count() == 4


def test_new_data_is_drawn_again_never_served_stale(history, clinician_client, clinician):  # noqa: F811
    from triage.services import record_ground_truth

    tasks.refresh_stored_figures_task()
    before = set(StoredFigure.objects.values_list("key", flat=True))
    record_ground_truth(
        case=history[3],
        entered_by=clinician,
        result=LabResult.Result.NEGATIVE,
        result_date=timezone.localdate(),
        note="Sample swapped.",
    )
    assert clinician_client.get(reverse("staff-performance")).content.decode().count("data:image/png;base64,") == 3
    assert len(set(StoredFigure.objects.values_list("key", flat=True)) - before) == 3


def test_a_lab_result_queues_a_refresh_once_it_commits(
    history,  # noqa: F811
    clinician,
    monkeypatch,
    django_capture_on_commit_callbacks,
):
    from triage.services import record_ground_truth

    queued = []
    monkeypatch.setattr("modelops.tasks.refresh_stored_figures_task.delay", lambda: queued.append("refresh"))
    with django_capture_on_commit_callbacks(execute=True):
        record_ground_truth(
            case=history[0],
            entered_by=clinician,
            result=LabResult.Result.NEGATIVE,
            result_date=timezone.localdate(),
            note="Sample swapped.",
        )
        assert queued == []  # not before the commit
    assert queued == ["refresh"]


def test_old_figures_are_dropped_at_the_next_refresh(history):  # noqa: F811
    tasks.refresh_stored_figures_task()
    StoredFigure.objects.create(key="0" * 64, value="1")
    StoredFigure.objects.filter(key="0" * 64).update(computed_at=timezone.now() - timezone.timedelta(days=31))
    tasks.refresh_stored_figures_task()
    assert not StoredFigure.objects.filter(key="0" * 64).exists()
    assert StoredFigure.objects.count() == 3


def test_a_web_process_starts_without_matplotlib_scikit_learn_or_scipy():
    """Settings, apps (their admin too) and every URL's view import none of them: only drawing and
    fitting do, and those run in the worker."""
    code = (
        "import sys, django; django.setup(); import portal.urls, modelops.views; "
        f"print(sorted(name for name in {HEAVY!r} if name in sys.modules))"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
