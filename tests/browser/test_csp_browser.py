"""The Content-Security-Policy in a real browser (Debian's Chromium via Playwright): patient pages,
staff pages, admin and the API docs load without a single CSP violation, and what depends on script
still works under the policy: the ROI editor (patient and clinician), the case page's boxes and the
htmx badge."""

from datetime import timedelta

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from portal.booking.models import Slot
from portal.booking.services import book_appointment
from tests.browser.test_browser import browser, drag_box, log_in  # noqa: F401  (browser is a fixture)
from triage.services import accept_photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

# Every violation the page reports, kept in the page (reset by each navigation).
COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} refused ${event.blockedURI || "inline"} (${event.sourceFile}:${event.lineNumber})`
  );
});
"""


class WatchedPage:
    """A page whose CSP violations (events and console reports) are checked after each visit."""

    def __init__(self, browser, live_server):  # noqa: F811
        self.context = browser.new_context(viewport={"width": 1200, "height": 900})
        self.context.add_init_script(COLLECT_VIOLATIONS)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.console = []
        self.page.on("console", self._console)
        self.live_server = live_server

    def _console(self, message):
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            self.console.append(message.text)

    def visit(self, url, ready=None, refusals_expected=()):
        self.console.clear()
        response = self.page.goto(self.live_server.url + url)
        assert response.status == 200, (url, response.status)
        assert "default-src 'self'" in response.headers["content-security-policy"]
        if ready:
            expect(self.page.locator(ready).first).to_be_visible()
        self.page.wait_for_load_state("networkidle")
        self.assert_no_violations(url, refusals_expected)

    def assert_no_violations(self, where, refusals_expected=()):
        violations = [
            violation
            for violation in self.page.evaluate("window.__cspViolations || []") + self.console
            if not any(url in violation for url in refusals_expected)
        ]
        assert violations == [], f"{where}: {violations}"


@pytest.fixture
def watched(browser, live_server):  # noqa: F811
    pages = []

    def make():
        pages.append(WatchedPage(browser, live_server))
        return pages[-1]

    yield make
    for page in pages:
        page.context.close()


def test_anonymous_and_patient_pages_and_the_patients_roi_editor(
    watched, patient, appointment, make_image_bytes, tmp_path
):
    browser_page = watched()
    for name in ["login", "signup", "patient-information", "password_reset", "sign-in-link-request"]:
        browser_page.visit(reverse(name))
    log_in(browser_page.page, browser_page.live_server, patient)
    for url in [reverse("home"), reverse("book"), reverse("appointment-reschedule", args=[appointment.reference])]:
        browser_page.visit(url)
    browser_page.visit(reverse("appointment", args=[appointment.reference]))

    page = browser_page.page
    photo_path = tmp_path / "hand.jpg"
    photo_path.write_bytes(make_image_bytes(size=(800, 600), color=(205, 160, 130)))
    page.set_input_files("input[name=photos]", str(photo_path))  # the preview is a blob: image
    drag_box(page, page.locator("#roi-editor canvas"), (0.25, 0.25), (0.6, 0.7))
    assert int(page.input_value("input[name=roi_x0]")) == pytest.approx(200, abs=16)
    browser_page.assert_no_violations("ROI editor")


def test_staff_pages_the_case_pages_boxes_the_editor_and_the_htmx_badge(
    watched,
    clinician,
    prediction,
    settings,
    record_result,
    make_upload,
    enqueued,
):
    settings.STAFF_BADGE_POLL_SECONDS = 1
    case = prediction.photo.case
    browser_page = watched()
    page = browser_page.page
    log_in(page, browser_page.live_server, clinician)
    for name in ["staff-queue", "staff-model-card", "staff-performance", "staff-comparison"]:
        browser_page.visit(reverse(name))
    browser_page.visit(reverse("staff-lab-result", args=[case.pk]))

    browser_page.visit(reverse("staff-case", args=[case.pk]), ready=".roi-box")
    # The box (20, 10, 120, 90) of a 200×120 photo is placed from its data-style, through the CSSOM.
    box = page.locator(".roi-box").first
    assert box.evaluate("element => element.style.left") == "10%"
    assert box.evaluate("element => element.style.width") == "50%"
    page.click("summary:has-text('redraw the box')")
    page.click(f"#roi-editor-{prediction.photo.pk} .roi-clear")
    drag_box(page, page.locator(f"#roi-editor-{prediction.photo.pk} canvas"), (0.5, 0.25), (0.9, 0.9))
    form = page.locator(f"form:has(#roi-editor-{prediction.photo.pk})")
    assert int(form.locator("input[name=roi_x0]").input_value()) == pytest.approx(100, abs=6)
    browser_page.assert_no_violations("clinician's ROI editor")

    # htmx: a new flagged case reaches the badge by polling, with no violation on the way.
    browser_page.visit(reverse("staff-queue"))
    expect(page.locator("#flagged-badge .count")).to_have_text("1")
    slot = case.appointment.slot
    later = Slot.objects.create(clinic=slot.clinic, service=slot.service, starts_at=slot.starts_at + timedelta(hours=2))
    second = book_appointment(patient=case.appointment.patient, slot=later, consent_care=True)
    photo = accept_photo(case=second.case, uploaded_by=second.patient, uploaded_file=make_upload(), body_site="hands")
    record_result(photo, 0.9)
    expect(page.locator("#flagged-badge .count")).to_have_text("2", timeout=10_000)
    browser_page.assert_no_violations("htmx badge")


def test_admin_pages(watched, admin_user, prediction):
    browser_page = watched()
    log_in(browser_page.page, browser_page.live_server, admin_user)
    photo = prediction.photo
    for url in [
        reverse("admin:index"),
        reverse("admin:triage_case_changelist"),
        reverse("admin:triage_case_change", args=[photo.case_id]),
        reverse("admin:triage_photo_changelist"),
        reverse("admin:triage_prediction_change", args=[prediction.pk]),
        reverse("admin:registry_modelversion_changelist"),
        reverse("admin:core_auditevent_changelist"),
    ]:
        browser_page.visit(url)
    # The thumbnail keeps its size from the admin stylesheet, not an inline style.
    browser_page.visit(reverse("admin:triage_photo_changelist"), ready="img.admin-thumbnail")
    assert (
        browser_page.page.locator("img.admin-thumbnail").first.evaluate("img => getComputedStyle(img).maxHeight")
        == "80px"
    )


# Redoc's bundle always shows a footer logo from cdn.redoc.ly: the policy refusing it is the policy at work
# (the page loads nothing from other sites); any other violation fails.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.mark.parametrize(
    ("name", "ready", "refusals_expected"),
    [
        ("api-docs", ".opblock", ()),
        ("api-redoc", "[data-section-id^='tag/']", (REDOC_LOGO,)),
    ],
)
def test_api_docs_pages(watched, name, ready, refusals_expected):
    watched().visit(reverse(name), ready=ready, refusals_expected=refusals_expected)
