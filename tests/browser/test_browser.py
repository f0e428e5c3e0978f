"""The patient and clinician pages in a real browser: Debian's Chromium driven by Playwright.

Screenshots land in out/screenshots/ (ignored by git) for a person to look at.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image, ImageDraw, ImageFilter
from playwright.sync_api import expect, sync_playwright

from core.models import AuditEvent
from registry.versions import register_checkpoints
from tests.conftest import PASSWORD
from triage.analysis import analyse_photos
from triage.models import Case, Decision, Photo
from triage.services import accept_photo

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/install.sh installs Debian's chromium package.")
    # Playwright's sync API runs an event loop; Django's async-safety check must allow ORM calls beside it.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def log_in(page, live_server, user):
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_load_state()


def drag_box(page, canvas, start, end):
    """Drag with the mouse across the ROI canvas, from and to fractions (x, y) of its size."""
    expect(canvas).to_be_visible()
    canvas.scroll_into_view_if_needed()  # mouse coordinates are the viewport's
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * start[0], box["y"] + box["height"] * start[1])
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end[0], box["y"] + box["height"] * end[1], steps=8)
    page.mouse.up()


def test_patient_uploads_with_a_box_and_sees_status_change(
    page, live_server, patient, appointment, private_storage, make_image_bytes, enqueued, tmp_path
):
    """Booking itself is driven in tests/browser/test_patient_journey.py."""
    log_in(page, live_server, patient)
    page.goto(live_server.url + reverse("appointment", kwargs={"reference": appointment.reference}))
    expect(page.locator(".ref").first).to_have_text(appointment.reference)

    photo_path = tmp_path / "hand.jpg"
    photo_path.write_bytes(make_image_bytes(size=(800, 600), color=(205, 160, 130)))
    page.set_input_files("input[name=photos]", str(photo_path))
    drag_box(page, page.locator("#roi-editor canvas"), (0.25, 0.25), (0.6, 0.7))
    page.select_option("select[name=body_site]", "hands")
    page.check("input[name=consent_confirm]")
    page.screenshot(path=SCREENSHOTS / "patient-upload-box.png", full_page=True)
    page.click("button:has-text('Send photos')")  # sent by static/js/photo-upload.js, then the page reloads

    expect(page.locator(".photo-item")).to_have_count(1)
    photo = Photo.objects.get(case__appointment=appointment)
    assert photo.roi_source == "patient"
    # The box drawn from 25 %..60 % across and 25 %..70 % down, in original-photo pixels.
    assert photo.roi == pytest.approx((200, 150, 480, 420), abs=16)
    assert enqueued == [(photo.pk, None)]

    badge = page.locator(f"[data-photo-status='{photo.pk}']")
    expect(badge).to_have_text("Received")
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.ANALYSED)
    expect(badge).to_have_text("Analysed", timeout=15_000)  # polled, no reload
    assert "%" not in page.locator("#photo-list").inner_text()  # patients never see a score
    page.screenshot(path=SCREENSHOTS / "patient-appointment.png", full_page=True)


def test_patient_taps_the_lesion_on_a_phone(
    browser, live_server, patient, appointment, private_storage, make_image_bytes, enqueued, tmp_path
):
    """One tap at phone width: the server's box for that tap is shown, then stored as a tap."""
    from ml.boxes import box_from_tap

    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2
    )
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        log_in(page, live_server, patient)
        page.goto(live_server.url + reverse("appointment", kwargs={"reference": appointment.reference}))
        photo_path = tmp_path / "arm.jpg"
        photo_path.write_bytes(make_image_bytes(size=(1200, 900), color=(190, 140, 110)))
        page.set_input_files("input[name=photos]", str(photo_path))
        canvas = page.locator("#roi-editor canvas")
        expect(canvas).to_be_visible()
        canvas.scroll_into_view_if_needed()
        bounds = canvas.bounding_box()
        assert bounds["width"] <= 390  # the photo fits the phone's width
        page.touchscreen.tap(bounds["x"] + bounds["width"] * 0.7, bounds["y"] + bounds["height"] * 0.3)

        readout = page.locator("#roi-editor .roi-readout")
        expect(readout).to_contain_text("the analysis will look at the square shown")
        expected = box_from_tap(840, 270, (1200, 900))
        side = expected[2] - expected[0]
        expect(readout).to_contain_text(f"{side} × {side} pixels")
        assert page.input_value("input[name=roi_x0]") == ""  # only the tap is sent
        tap = (int(page.input_value("input[name=tap_x]")), int(page.input_value("input[name=tap_y]")))
        assert tap == pytest.approx((840, 270), abs=6)
        page.select_option("select[name=body_site]", "hands")
        page.check("input[name=consent_confirm]")
        page.locator("#roi-editor").screenshot(path=SCREENSHOTS / "patient-upload-tap-phone.png")
        page.screenshot(path=SCREENSHOTS / "patient-upload-tap-phone-page.png", full_page=True)
        page.click("button:has-text('Send photos')")

        expect(page.locator(".photo-item")).to_have_count(1)
        photo = Photo.objects.get(case=appointment.case)
        assert photo.roi_source == "patient_tap"
        assert photo.roi == box_from_tap(*tap, (1200, 900))
    finally:
        context.close()


def test_upload_of_a_non_image_shows_a_clear_error_and_saves_nothing(
    page, live_server, patient, appointment, private_storage, stored_files, tmp_path
):
    log_in(page, live_server, patient)
    page.goto(live_server.url + reverse("appointment", kwargs={"reference": appointment.reference}))
    not_a_photo = tmp_path / "notes.jpg"
    not_a_photo.write_bytes(b"%PDF-1.7 this is not an image")
    page.set_input_files("input[name=photos]", str(not_a_photo))
    page.select_option("select[name=body_site]", "trunk")
    page.check("input[name=consent_confirm]")
    page.click("button:has-text('Send photos')")
    # The upload script shows the server's reason beside the file's progress bar.
    expect(page.locator(".upload-progress .failed")).to_contain_text("notes.jpg: This file is not a photo we can read")
    page.screenshot(path=SCREENSHOTS / "patient-upload-error.png", full_page=True)
    assert not Photo.objects.exists()
    assert stored_files() == []


def test_clinician_reviews_a_flagged_case_and_records_a_decision(page, live_server, clinician, prediction):
    case = prediction.photo.case
    log_in(page, live_server, clinician)
    page.goto(live_server.url + reverse("staff-queue"))
    row = page.locator(f"text={case.appointment.reference}").first
    expect(row).to_be_visible()
    page.screenshot(path=SCREENSHOTS / "clinician-queue.png", full_page=True)

    page.goto(live_server.url + reverse("staff-case", kwargs={"case_id": case.pk}))
    expect(page.locator(".score").first).to_contain_text("83%")
    expect(page.locator(".roi-box").first).to_be_visible()
    for image in page.locator(".photo-trio img").all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), "an image failed to load"
    page.screenshot(path=SCREENSHOTS / "clinician-case.png", full_page=True)

    page.check("input[name=outcome][value=suspected]")
    page.check("input[name=action][value=isolation_room]")
    page.fill("textarea[name=note]", "Umbilicated papules; isolation room and PCR swab.")
    page.click("button:has-text('Record decision')")
    page.wait_for_load_state()
    decision = Decision.objects.get(case=case)
    assert (decision.outcome, decision.action, decision.clinician) == ("suspected", "isolation_room", clinician)
    assert Case.objects.get(pk=case.pk).outcome == "suspected"
    assert AuditEvent.objects.filter(actor=clinician, action="view_case").exists()
    assert AuditEvent.objects.filter(actor=clinician, action="view_heatmap", allowed=True).exists()


def synthetic_skin_photo(path, size=(1024, 768), seed=3):
    """A made-up photo: shaded skin with a cluster of pustules with darker centres (no patient data)."""
    rng = np.random.default_rng(seed)
    width, height = size
    yy, xx = np.mgrid[0:height, 0:width]
    shade = 0.85 + 0.15 * np.sin(xx / width * np.pi) * np.cos((yy / height - 0.5) * np.pi / 2)
    skin = np.stack([196 * shade, 150 * shade, 124 * shade], axis=-1) + rng.normal(0, 4, (height, width, 3))
    image = Image.fromarray(np.clip(skin, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(7):
        x, y, r = rng.integers(420, 640), rng.integers(300, 470), rng.integers(14, 26)
        draw.ellipse((x - r - 8, y - r - 8, x + r + 8, y + r + 8), fill=(205, 120, 110))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(236, 222, 190))
        draw.ellipse((x - r // 3, y - r // 3, x + r // 3, y + r // 3), fill=(120, 70, 60))
    image.filter(ImageFilter.GaussianBlur(1.5)).save(path, "JPEG", quality=92)


def test_shipped_model_result_on_the_clinician_case_page(
    page, live_server, clinician, appointment, patient, private_storage, enqueued, tmp_path
):
    """The committed checkpoint, registered as in production, analyses a synthetic photo in-process;
    the case page shows the automatic ROI, heatmap and score (the README's screenshot)."""
    (model_version,) = register_checkpoints()
    photo_path = tmp_path / "synthetic.jpg"
    synthetic_skin_photo(photo_path)
    upload = SimpleUploadedFile("synthetic.jpg", photo_path.read_bytes(), "image/jpeg")
    photo = accept_photo(case=appointment.case, uploaded_by=patient, uploaded_file=upload, body_site="trunk")
    (prediction,) = analyse_photos([photo.pk])
    assert prediction.model_version == model_version and prediction.roi_source in {"auto", "none"}

    log_in(page, live_server, clinician)
    page.goto(live_server.url + reverse("staff-case", kwargs={"case_id": appointment.case.pk}))
    expect(page.locator(".score").first).to_contain_text(f"{round(prediction.probability * 100)}%")
    # the shipped checkpoint carries a differential: its top three, marked decision support, shown
    # only where the photo could be judged (as the score is only used then)
    assert len(prediction.differential) == 6
    if prediction.assessable:
        expect(page.locator("[data-differential]").first).to_contain_text("Decision support")
        expect(page.locator("[data-differential] li")).to_have_count(3)
    else:
        expect(page.locator("[data-differential]")).to_have_count(0)
    for image in page.locator(".photo-trio img").all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0"), "an image failed to load"
    page.locator(".photo-review").first.screenshot(path=SCREENSHOTS / "clinician-case-shipped-model.png")


def test_clinician_redraws_the_box_and_requests_a_new_analysis(page, live_server, clinician, prediction, enqueued):
    photo = prediction.photo  # 200×120, analysed with an automatic box
    log_in(page, live_server, clinician)
    page.goto(live_server.url + reverse("staff-case", kwargs={"case_id": photo.case_id}))
    page.click("summary:has-text('redraw the box')")
    canvas = page.locator(f"#roi-editor-{photo.pk} canvas")
    page.click(f"#roi-editor-{photo.pk} .roi-clear")  # then draw afresh (a drag inside a box moves it)
    drag_box(page, canvas, (0.5, 0.25), (0.9, 0.9))
    page.screenshot(path=SCREENSHOTS / "clinician-redraw.png", full_page=True)
    page.click("button:has-text('Analyse again')")
    page.wait_for_load_state()

    photo.refresh_from_db()
    assert photo.roi_source == "clinician" and photo.status == Photo.Status.RECEIVED
    assert photo.roi == pytest.approx((100, 30, 180, 108), abs=6)
    assert enqueued[-1] == (photo.pk, clinician.pk)  # after the upload's own request
    assert photo.predictions.active().count() == 1  # the earlier analysis is kept; the worker adds the new one


def test_clinician_moves_the_box_by_dragging_inside_it(page, live_server, clinician, prediction, enqueued):
    photo = prediction.photo  # 200×120 with the box (20, 10, 120, 90)
    log_in(page, live_server, clinician)
    page.goto(live_server.url + reverse("staff-case", kwargs={"case_id": photo.case_id}))
    page.click("summary:has-text('redraw the box')")
    # from the box's centre (70, 50) to (130, 60): moved 60 right, 10 down, same size
    drag_box(page, page.locator(f"#roi-editor-{photo.pk} canvas"), (0.35, 50 / 120), (0.65, 60 / 120))
    page.click("button:has-text('Analyse again')")
    page.wait_for_load_state()

    photo.refresh_from_db()
    assert photo.roi_source == "clinician"
    assert photo.roi == pytest.approx((80, 20, 180, 100), abs=4)
