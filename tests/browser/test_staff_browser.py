"""The clinician's shift in a real browser (Debian's Chromium via Playwright), at phone and desktop
widths: queue → case → request a new photo → the patient sees the reason and uploads again →
the case is back in the queue → decision. Screenshots go to out/screenshots/, or to docs/screenshots/
(committed, for the docs site) with UPDATE_SCREENSHOTS=1 (tests/screenshots.py)."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from playwright.sync_api import expect

from portal.booking.services import book_appointment
from registry.versions import activate_model_version, register_checkpoints
from tests.browser.test_browser import browser, log_in, synthetic_skin_photo  # noqa: F401  (browser is a fixture)
from tests.screenshots import screenshot_dir
from triage.analysis import analyse_photos
from triage.models import Case, Decision, Outcome, Photo
from triage.services import accept_photo

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def new_page(browser, viewport):  # noqa: F811
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def assert_fits_the_width(page):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than the screen"


def upload(case, patient, path, name):
    return accept_photo(
        case=case,
        uploaded_by=patient,
        uploaded_file=SimpleUploadedFile(name, path.read_bytes(), "image/jpeg"),
        body_site="trunk",
    )


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_a_clinician_asks_for_a_new_photo_and_the_retake_comes_back_to_the_queue(
    browser,
    live_server,
    viewport,
    clinician,
    patient,
    other_patient,
    make_slot,
    private_storage,  # noqa: F811
    enqueued,
    make_upload,
    record_result,
    tmp_path,
    settings,
):
    settings.STAFF_BADGE_POLL_SECONDS = 1
    screenshots = screenshot_dir()
    (shipped,) = register_checkpoints()
    activate_model_version(shipped)  # the shipped model scores the synthetic photos, in this process
    patient.first_name, patient.last_name = "Robin", "Example"
    patient.save()
    other_patient.first_name, other_patient.last_name = "Sam", "Sample"
    other_patient.save()
    appointment = book_appointment(
        patient=patient,
        slot=make_slot(5),
        consent_care=True,
        questionnaire={"notes": "Painful blisters on the chest since Monday; mild fever."},
    )
    first_photo = tmp_path / "first.jpg"
    synthetic_skin_photo(first_photo, seed=3)
    # The shipped model judges this drawn photo not assessable (no lesion like those it learnt), so
    # the flagged case the shift starts from is recorded the worker's way, with a high score.
    record_result(upload(appointment.case, patient, first_photo, "first.jpg"), 0.9)
    for hours, probability in [(3, 0.31), (26, 0.07), (50, None)]:  # other cases around it
        other = book_appointment(patient=other_patient, slot=make_slot(hours), consent_care=True)
        photo = accept_photo(case=other.case, uploaded_by=other_patient, uploaded_file=make_upload(), body_site="hands")
        if probability is not None:
            record_result(photo, probability)
    case = Case.objects.get(pk=appointment.case.pk)
    reference = appointment.reference
    assert case.flagged

    # Queue: the flagged case first; the badge counts it.
    staff = new_page(browser, viewport)
    log_in(staff, live_server, clinician)
    staff.goto(live_server.url + reverse("staff-queue"))
    rows = staff.locator("table.queue tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text(reference)
    expect(staff.locator("#flagged-badge .count")).to_have_text("1")
    assert_fits_the_width(staff)
    staff.screenshot(path=screenshots / f"staff-queue-{viewport}.png", full_page=True)

    # The badge follows new flagged cases without a reload (htmx polling).
    late = book_appointment(patient=other_patient, slot=make_slot(30), consent_care=True)
    record_result(
        accept_photo(case=late.case, uploaded_by=other_patient, uploaded_file=make_upload(), body_site="legs"), 0.9
    )
    expect(staff.locator("#flagged-badge .count")).to_have_text("2", timeout=10_000)
    expect(rows).to_have_count(4)  # the table itself was not reloaded

    # Case page: photo with box, crop and heatmap; overlay, opacity and zoom; claimed by this clinician.
    staff.click(f"a:has-text('{reference}')")
    expect(staff.locator("h1")).to_contain_text(reference)
    expect(staff.locator(".claim")).to_contain_text("You are working on this case")
    review = staff.locator(".photo-review").first
    staff.wait_for_function(  # original, crop and heatmap all load (fails on a broken image by timeout)
        "() => [...document.querySelectorAll('.photo-trio img:not([hidden])')]"
        ".every(img => img.complete && img.naturalWidth > 0)"
    )
    expect(review.locator(".heatmap-layer")).to_be_hidden()
    review.locator("[data-heatmap-toggle]").check()
    expect(review.locator(".heatmap-layer")).to_be_visible()
    review.locator("[data-heatmap-opacity]").fill("40")
    assert review.locator(".heatmap-layer").evaluate("el => getComputedStyle(el).opacity") == "0.4"
    assert_fits_the_width(staff)
    staff.screenshot(path=screenshots / f"staff-case-{viewport}.png", full_page=True)
    width_before = review.locator(".zoom-stage").first.bounding_box()["width"]
    review.locator("[data-zoom]").fill("200")
    assert review.locator(".zoom-stage").first.bounding_box()["width"] == pytest.approx(2 * width_before, rel=0.02)
    assert_fits_the_width(staff)  # zoom scrolls inside the frame, never the page

    # Request a new photo: the action choices disappear; the reason is required and goes to the patient.
    staff.check("input[name=outcome][value=retake]")
    expect(staff.locator("[data-actions]")).to_be_hidden()
    reason = "The photo is a little blurred. Please take it again in daylight, holding the phone steady."
    staff.fill("textarea[name=patient_instructions]", reason)
    staff.fill("textarea[name=note]", "Cannot judge the centre of the lesions.")
    staff.screenshot(path=screenshots / f"staff-decision-form-{viewport}.png", full_page=False)
    staff.click("button:has-text('Record decision')")
    expect(staff.locator(".message.success")).to_contain_text("Decision recorded")
    assert Case.objects.get(pk=case.pk).outcome == Outcome.RETAKE
    staff.goto(live_server.url + reverse("staff-queue") + "?status=retake")
    expect(staff.locator("table.queue tbody tr")).to_have_count(1)
    expect(staff.locator("table.queue")).to_contain_text("New photo requested")

    # The patient sees the request with the reason and uploads again to the same appointment.
    patient_page = new_page(browser, viewport)
    log_in(patient_page, live_server, patient)
    patient_page.goto(live_server.url + reverse("appointment", args=[reference]))
    notice = patient_page.locator("#clinic-decision")
    expect(notice).to_contain_text("Please send a new photo")
    expect(notice).to_contain_text(reason)
    assert "%" not in notice.inner_text()
    assert_fits_the_width(patient_page)
    patient_page.screenshot(path=screenshots / f"patient-retake-request-{viewport}.png", full_page=True)
    retake_path = tmp_path / "retake.jpg"
    synthetic_skin_photo(retake_path, seed=5)
    patient_page.set_input_files("input[name=photos]", str(retake_path))
    patient_page.select_option("select[name=body_site]", "trunk")
    patient_page.check("input[name=consent_confirm]")
    patient_page.click("button:has-text('Send photos')")
    expect(patient_page.locator(".photo-item")).to_have_count(2)
    expect(patient_page.locator("#clinic-decision")).to_have_count(0)
    retake = Photo.objects.filter(case=case).order_by("-pk").first()
    analyse_photos([retake.pk])  # what the worker does with it

    # Back in the queue, undecided, first; the clinician decides.
    staff.goto(live_server.url + reverse("staff-queue") + "?status=undecided")
    expect(staff.locator("table.queue tbody tr").first).to_contain_text(reference)
    expect(staff.locator("table.queue tbody tr").first).to_contain_text("Awaiting review")
    staff.screenshot(path=screenshots / f"staff-queue-after-retake-{viewport}.png", full_page=True)
    staff.click(f"a:has-text('{reference}')")
    expect(staff.locator(".photo-review")).to_have_count(2)
    staff.check("input[name=outcome][value=suspected]")
    expect(staff.locator("input[name=action][value=standard]")).to_be_disabled()
    staff.check("input[name=action][value=isolation_room]")
    staff.fill("textarea[name=patient_instructions]", "Please use entrance B and call 020 7946 0000 when you arrive.")
    staff.click("button:has-text('Record decision')")
    expect(staff.locator("#decisions .decision")).to_have_count(2)
    decision = Decision.objects.filter(case=case).first()
    assert (decision.outcome, decision.action, decision.clinician) == ("suspected", "isolation_room", clinician)

    patient_page.goto(live_server.url + reverse("appointment", args=[reference]))
    expect(patient_page.locator("#clinic-decision")).to_contain_text("entrance B")
    patient_page.screenshot(path=screenshots / f"patient-instructions-{viewport}.png", full_page=True)
    staff.context.close()
    patient_page.context.close()
