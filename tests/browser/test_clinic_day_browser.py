"""Issue 23 in a real browser (Debian's Chromium via Playwright), at phone and desktop widths: the
reschedule page starts on the booked site and asks before changing site; cancelling asks first; the
case page's zoom centres on the lesion box and keeps each view's shape. axe-core finds nothing serious."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import expect

from portal.booking.models import Appointment, Clinic, Slot
from tests.browser.test_browser import SCREENSHOTS, browser, log_in  # noqa: F401  (browser is a fixture)
from tests.browser.test_patient_journey import assert_accessible
from tests.browser.test_staff_browser import VIEWPORTS, assert_fits_the_width, new_page
from triage.analysis import read_photo
from triage.services import accept_photo

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_reschedule_keeps_the_site_and_cancel_asks_first(
    browser, live_server, patient, appointment, make_slot, service, viewport
):  # noqa: F811
    make_slot(72)
    elsewhere = Clinic.objects.create(name="Another Clinic", address="2 River Road")
    other_slot = Slot.objects.create(
        clinic=elsewhere, service=service, starts_at=timezone.now().replace(microsecond=0) + timedelta(hours=50)
    )
    page = new_page(browser, viewport)
    log_in(page, live_server, patient)

    page.goto(live_server.url + reverse("appointment-reschedule", args=[appointment.reference]))
    expect(page.get_by_label("Which clinic?")).to_have_value(str(appointment.slot.clinic_id))
    expect(page.locator("#change-site")).to_have_count(0)
    assert_accessible(page, "reschedule")
    assert_fits_the_width(page)

    page.get_by_label("Which clinic?").select_option(str(elsewhere.pk))
    page.get_by_role("button", name="Show free days").click()
    confirm = page.get_by_label("Yes, move my appointment to Another Clinic")
    expect(confirm).to_be_visible()
    page.locator(f"input[name=slot][value='{other_slot.pk}']").check()
    page.get_by_role("button", name="Move my appointment to this time").click()
    expect(page.locator(".errors, .form-errors, [role=alert]").first).to_contain_text("Please confirm")
    appointment.refresh_from_db()
    assert appointment.slot.clinic.name == "Test Clinic"
    page.screenshot(path=SCREENSHOTS / f"reschedule-other-site-{viewport}.png", full_page=True)

    page.get_by_label("Yes, move my appointment to Another Clinic").check()
    page.locator(f"input[name=slot][value='{other_slot.pk}']").check()
    page.get_by_role("button", name="Move my appointment to this time").click()
    expect(page.get_by_text("Your appointment has moved")).to_be_visible()
    appointment.refresh_from_db()
    assert appointment.slot == other_slot

    page.get_by_role("link", name="Cancel this appointment").click()
    expect(page.get_by_role("heading", name="Cancel this appointment?")).to_be_visible()
    assert_accessible(page, "cancel confirmation")
    assert_fits_the_width(page)
    page.screenshot(path=SCREENSHOTS / f"cancel-confirmation-{viewport}.png", full_page=True)
    page.get_by_role("button", name="Yes, cancel it").click()
    expect(page.get_by_text(f"Appointment {appointment.reference} is cancelled")).to_be_visible()
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_zoom_centres_on_the_box_and_keeps_each_views_shape(
    browser,
    live_server,
    clinician,
    patient,
    appointment,
    private_storage,
    enqueued,
    make_upload,
    viewport,  # noqa: F811
):
    photo = accept_photo(
        case=appointment.case,
        uploaded_by=patient,
        uploaded_file=make_upload(size=(800, 600)),
        body_site="trunk",
        roi=(450, 150, 650, 350),
    )  # a square box right of centre
    read_photo(photo)  # the worker's first step: the photo is viewable once normalised
    page = new_page(browser, viewport)
    log_in(page, live_server, clinician)
    page.goto(live_server.url + reverse("staff-case", args=[appointment.case.pk]))
    viewer = page.locator(f"#photo-{photo.pk}")

    viewer.locator("[data-zoom]").fill("200")
    viewer.locator("[data-zoom]").dispatch_event("input")
    expect(viewer.locator("[data-zoom-readout]")).to_have_text("2×")

    views = viewer.locator(".zoom-box")
    original, crop = views.nth(0), views.nth(1)
    frame, box = original.bounding_box(), original.locator(".roi-box").bounding_box()
    assert abs((box["x"] + box["width"] / 2) - (frame["x"] + frame["width"] / 2)) < 4
    assert abs((box["y"] + box["height"] / 2) - (frame["y"] + frame["height"] / 2)) < 4
    shown = crop.bounding_box()
    assert abs(shown["width"] / shown["height"] - 1.0) < 0.03  # the square box stays square
    original_ratio = frame["width"] / frame["height"]
    assert abs(original_ratio - 800 / 600) < 0.03
    assert_fits_the_width(page)
    viewer.screenshot(path=SCREENSHOTS / f"case-zoom-2x-{viewport}.png")
