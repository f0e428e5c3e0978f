"""Learning from confirmed cases in a real browser (Debian's Chromium via Playwright), at phone and
desktop widths: the performance page, the comparison page (challenger and history + image model),
and entering a lab result. axe-core finds nothing serious; nothing scrolls sideways; the performance
page's first view shows the charts a worker stored, whole, without drawing any. Screenshots land in
out/screenshots/ for a person to look at."""

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from modelops import tasks
from registry.models import HistoryModel, ModelVersion
from tests.browser.test_browser import SCREENSHOTS, browser, log_in  # noqa: F401  (browser is a fixture)
from tests.browser.test_patient_journey import assert_accessible
from tests.browser.test_staff_browser import VIEWPORTS, assert_fits_the_width, new_page
from tests.clinic_history import book_past_case, build_history
from tests.modelops.test_performance import refuse_heavy_imports
from triage.history import HISTORY_FEATURES
from triage.models import LabResult

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def confirmed_history(settings, patient, clinician, clinic, model_version, private_storage, enqueued, make_image_bytes):
    settings.PERFORMANCE_MIN_CONFIRMED_CASES = 10
    settings.HISTORY_MODEL_MIN_CONFIRMED_CASES = 11
    settings.PROMOTION_MIN_CONFIRMED_CASES = 11
    settings.PERFORMANCE_BOOTSTRAP_SAMPLES = 200
    challenger = ModelVersion.objects.create(
        version="clinic-challenger",
        architecture="tiny",
        checkpoint_path="/nonexistent/c.pt",
        threshold=0.5,
        is_challenger=True,
    )
    build_history(
        patient=patient,
        clinician=clinician,
        clinic=clinic,
        active=model_version,
        challenger=challenger,
        heatmap_jpeg=make_image_bytes(size=(64, 64)),
    )
    HistoryModel.objects.create(
        version="history-1 on test-model-1",
        image_model=model_version,
        features=list(HISTORY_FEATURES),
        coefficients=[1.0, 3.0, 0, 0, 0, 0, 0, 0],
        intercept=-1.0,
        threshold=0.5,
        fitted_cases=0,
        fitted_positives=0,
    )


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_performance_comparison_and_lab_result_pages(
    browser,
    live_server,
    viewport,
    confirmed_history,
    clinician,  # noqa: F811
    patient,
    clinic,
    monkeypatch,
):
    page = new_page(browser, viewport)
    log_in(page, live_server, clinician)

    tasks.refresh_stored_figures_task()  # what the worker runs once lab results come in
    with monkeypatch.context() as patch:
        refuse_heavy_imports(patch)  # the live server's first view draws and fits nothing
        page.goto(live_server.url + reverse("staff-performance"))
        expect(page.get_by_role("heading", name="Model performance")).to_be_visible()
    expect(page.locator("#history-model")).to_contain_text("history-1 on test-model-1")
    expect(page.locator("#history-model")).to_contain_text("Out-of-fold AUC")
    charts = page.locator("img[src^='data:image/png']")
    assert charts.count() == 6  # ROC, reliability, score distribution of the active model and the challenger
    for chart in charts.all():
        shown = chart.evaluate(
            """img => { const box = img.getBoundingClientRect();
                return {loaded: img.complete && img.naturalWidth > 0, left: box.left, right: box.right,
                        ratio: box.width / box.height, natural: img.naturalWidth / img.naturalHeight}; }"""
        )
        assert shown["loaded"] and 0 <= shown["left"] and shown["right"] <= VIEWPORTS[viewport]["width"], shown
        assert abs(shown["ratio"] - shown["natural"]) < 0.02, shown  # scaled whole, never cropped
    assert_accessible(page, f"performance ({viewport})")
    assert_fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / f"learning-performance-{viewport}.png", full_page=True)

    page.goto(live_server.url + reverse("staff-comparison"))
    expect(page.get_by_text("Image models: 11 shared confirmed cases")).to_be_visible()
    expect(page.get_by_text("History and image: 11 shared confirmed cases")).to_be_visible()
    assert_accessible(page, f"comparison ({viewport})")
    assert_fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / f"learning-comparison-{viewport}.png", full_page=True)

    case, _ = book_past_case(patient=patient, clinic=clinic, days_ago=2, seed=30)
    page.goto(live_server.url + reverse("staff-lab-result", args=[case.pk]))
    page.get_by_label("Mpox PCR").select_option(LabResult.Result.POSITIVE)
    page.get_by_label("Date of result").fill(timezone.localdate().isoformat())
    page.get_by_label("Final diagnosis").select_option("mpox")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Lab result and diagnosis saved.")).to_be_visible()
    expect(page.locator("#ground-truth")).to_contain_text("Mpox PCR positive")
    assert case.lab_results.get().entered_by == clinician
    assert_accessible(page, f"lab result ({viewport})")
    assert_fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / f"learning-lab-result-{viewport}.png", full_page=True)
