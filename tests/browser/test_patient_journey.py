"""The whole patient journey in a real browser (Debian's Chromium via Playwright) at a phone's and a
desktop's size: sign up and verify, book (site, service, day, time, questions, consent), the emails,
photos with guidance and progress (a huge photo is shrunk in the browser first), a live status that
asks for a retake, consent withdrawal, the Spanish pages, and axe-core on every page.

Screenshots go to out/screenshots/, or to docs/screenshots/ (committed, shown in the docs site) with
UPDATE_SCREENSHOTS=1 (tests/screenshots.py)."""

import re

import numpy as np
import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core import mail
from django.urls import reverse
from PIL import Image
from playwright.sync_api import expect

from portal.booking.models import Appointment, Clinic, Service, Slot
from tests.browser.test_browser import browser  # noqa: F401  (the shared Chromium)
from tests.screenshots import screenshot_dir
from triage.analysis import read_photo
from triage.models import Photo, PhotoReason

VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
PASSWORD = "a-long-unusual-passphrase"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def assert_accessible(page, name):
    """axe-core (bundled by axe-playwright-python, run inside the page) finds nothing serious."""
    violations = Axe().run(page).response["violations"]
    serious = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[node['target'] for node in v['nodes']][:3]}"
        for v in violations
        if v["impact"] in ("serious", "critical")
    ]
    assert not serious, f"{name}: {serious}"


def full_page_screenshot(page, path):
    """The whole page with its lazy images loaded (on a phone those below the fold are not, yet)."""
    page.evaluate("""() => Promise.all([...document.images].map(image => {
        image.loading = "eager";
        return image.complete ? null : new Promise(done => { image.onload = image.onerror = done; });
    }))""")
    page.screenshot(path=path, full_page=True)


def huge_photo(path):
    """A 4000×3000 made-up skin photo: big enough that the browser shrinks it before sending."""
    rng = np.random.default_rng(1)
    pixels = np.clip(rng.normal((200, 150, 125), 12, (3000, 4000, 3)), 0, 255).astype(np.uint8)
    Image.fromarray(pixels).save(path, "JPEG", quality=80)


@pytest.fixture(autouse=True)
def information_pages(db):
    """The pages the data migration made (a transactional test's flush removes them)."""
    import importlib

    from portal.booking.models import PatientInformation

    pages = importlib.import_module("portal.booking.migrations.0003_patient_information_pages").PAGES
    for language, fields in pages.items():
        PatientInformation.objects.get_or_create(language=language, defaults=fields)


@pytest.fixture
def clinic_week(clinician):
    """Two sites, two services and free slots on several days (tomorrow onwards)."""
    from datetime import datetime, time, timedelta

    from django.utils import timezone

    sites = [
        Clinic.objects.create(name="Central Clinic", address="1 High Street", phone="020 7946 0000"),
        Clinic.objects.create(name="North Clinic", address="22 North Road"),
    ]
    services = [Service.objects.get_or_create(name=name)[0] for name in ("Skin lesion review", "Sexual health check")]
    for offset in range(1, 5):
        day = timezone.localdate() + timedelta(days=offset)
        for minutes in range(0, 6 * 60, 20):
            starts_at = timezone.make_aware(datetime.combine(day, time(9, 0))) + timedelta(minutes=minutes)
            for site, service in zip(sites, services):
                Slot.objects.create(clinic=site, service=service, starts_at=starts_at, duration_minutes=20)
    return sites, services


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_patient_journey(browser, live_server, clinic_week, private_storage, enqueued, tmp_path, device):  # noqa: F811
    screenshots = screenshot_dir()
    context = browser.new_context(viewport=VIEWPORTS[device], locale="en-GB")
    page = context.new_page()
    page.set_default_timeout(15_000)
    shot = lambda name: full_page_screenshot(page, screenshots / f"patient-{name}-{device}.png")  # noqa: E731
    email_address = f"journey-{device}@example.org"

    # Sign up, confirm the address from the email.
    page.goto(live_server.url + reverse("home"))
    expect(page.get_by_role("link", name="Forgotten your password?")).to_be_visible()
    assert_accessible(page, "sign in")
    shot("sign-in")
    page.get_by_role("link", name="create an account with a password").click()
    page.get_by_label("Email address").fill(email_address)
    page.get_by_label("Choose a password").fill(PASSWORD)
    assert_accessible(page, "sign up")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    verify_link = re.search(r"https?://\S+", mail.outbox[-1].body).group(0)
    page.goto(live_server.url + re.sub(r"^https?://[^/]+", "", verify_link))
    expect(page.get_by_text("your email address is confirmed")).to_be_visible()

    # Book: a service and site, a day, then that day's times; questions; consent.
    page.get_by_role("link", name="Book an appointment").first.click()
    page.get_by_label("What do you need?").select_option(label="Skin lesion review")
    page.get_by_role("button", name="Show free days").click()
    page.locator(".day-link").nth(1).click()
    expect(page.locator(".day-link").nth(1)).to_have_attribute("aria-current", "date")
    assert page.locator("input[name=slot]").count() == 18  # one day's times, not a fortnight's
    page.locator(".slot span").nth(3).click()
    page.locator("#id_fever").get_by_label("Yes").check()
    page.locator("#id_swollen_lymph_nodes").get_by_label("Not sure").check()
    page.get_by_label("Hands or arms").check()
    page.get_by_label("Genital area").check()
    page.locator("#id_lesion_count").get_by_label("2 to 5").check()
    page.get_by_label("Painful and itchy").check()
    page.locator("#id_close_contact").get_by_label("Yes").check()
    page.locator("#id_travel").get_by_label("No").check()
    page.get_by_label("Yes, two doses").check()
    page.locator("#id_consent_care").check()
    page.locator("#id_consent_research").check()
    assert_accessible(page, "booking")
    shot("book")
    page.get_by_role("button", name="Book this appointment").click()

    appointment = Appointment.objects.get(patient__email=email_address)
    expect(page.locator(".ref").first).to_have_text(appointment.reference)
    assert appointment.slot.service.name == "Skin lesion review" and appointment.consent_research
    assert sorted(appointment.questionnaire["lesion_sites"]) == ["genital", "hands"]
    confirmation = mail.outbox[-1]
    assert appointment.reference in confirmation.subject

    # Photos: guidance first, then a huge photo sent with a progress bar and shrunk in the browser.
    expect(page.get_by_role("heading", name="Before you open the camera")).to_be_visible()
    for image in page.locator(".guide img").all():
        assert image.evaluate("img => img.complete && img.naturalWidth > 0")
    photo_path = tmp_path / "huge.jpg"
    huge_photo(photo_path)
    page.set_input_files("input[name=photos]", str(photo_path))
    page.select_option("select[name=body_site]", "hands")
    page.check("input[name=consent_confirm]")
    assert_accessible(page, "appointment with a photo chosen")
    page.get_by_role("button", name="Send photos").click()
    expect(page.get_by_text("Thank you: 1 photo received.")).to_be_visible()
    photo = Photo.objects.get(case__appointment=appointment)
    assert max(photo.width, photo.height) == 3000  # shrunk from 4000 px before upload
    badge = page.locator(f"[data-photo-status='{photo.pk}']")
    expect(badge).to_have_text("Received")

    # The worker prepares it (metadata stripped): the photo appears without a reload.
    preparing = page.locator(f"[data-preparing='{photo.pk}']")
    expect(preparing).to_contain_text("Preparing your photo")
    read_photo(photo)
    shown = page.locator("#photo-list img")
    expect(shown).to_be_visible(timeout=15_000)
    expect(preparing).to_have_count(0)
    assert shown.get_attribute("alt") == "Your photo 1 (Hands or arms)"
    shown.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const img = document.querySelector('#photo-list img'); return img.complete && img.naturalWidth > 0; }",
        timeout=15_000,
    )

    # The worker finds it too dark: the status changes live and a retake is offered.
    retake = page.locator(f"[data-retake='{photo.pk}']")
    expect(retake).to_be_hidden()
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.REJECTED, status_reason=PhotoReason.TOO_DARK)
    expect(badge).to_contain_text("too dark", timeout=15_000)
    expect(retake).to_be_visible()
    assert "%" not in page.locator("#photo-list").inner_text()  # never a score
    assert_accessible(page, "appointment")
    shot("appointment")
    retake.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Take the photo again")).to_be_visible()
    assert page.locator("select[name=body_site]").input_value() == "hands"

    # Research consent withdrawn (care consent stays), recorded.
    page.get_by_role("button", name="Withdraw from research").click()
    expect(page.get_by_text("will not be used for research")).to_be_visible()
    appointment.refresh_from_db()
    assert not appointment.consent_research and appointment.consent_records.count() == 3

    # Spanish, from the switcher.
    page.get_by_label("Language").select_option("es")
    page.get_by_role("button", name="Change language").click()
    expect(page.get_by_role("heading", name="Su cita")).to_be_visible()
    expect(badge).to_have_text(
        "Hay que repetirla: La foto está demasiado oscura para valorarla. Hágala de nuevo con buena luz."
    )
    assert_accessible(page, "appointment in Spanish")
    shot("appointment-es")
    page.get_by_role("link", name="Sobre la mpox: información para pacientes").first.click()
    expect(page.get_by_role("heading", name="Cómo se transmite")).to_be_visible()
    assert_accessible(page, "information page")
    page.get_by_label("Idioma").select_option("en-gb")
    page.get_by_role("button", name="Cambiar idioma").click()
    shot("information")

    # Back later from the confirmation email's one-time link, signed out.
    page.context.clear_cookies()
    link = re.search(r"https?://\S+/accounts/link/\S+", confirmation.body).group(0)
    page.goto(live_server.url + re.sub(r"^https?://[^/]+", "", link))
    page.get_by_role("button", name="Continue to your appointment").click()
    expect(page.locator(".ref").first).to_have_text(appointment.reference)

    # Move the appointment to another day.
    page.get_by_role("link", name="Change the time").click()
    page.locator(".day-link").nth(2).click()
    page.locator(".slot span").first.click()
    assert_accessible(page, "reschedule")
    page.get_by_role("button", name="Move my appointment to this time").click()
    expect(page.get_by_text("Your appointment has moved")).to_be_visible()
    moved = Appointment.objects.get(pk=appointment.pk)
    assert moved.slot != appointment.slot and moved.case.photos.count() == 1

    assert page.evaluate("document.documentElement.scrollWidth") <= VIEWPORTS[device]["width"]  # no sideways scroll
    context.close()


def test_usable_at_360_px(browser, live_server, patient, appointment, clinic_week):  # noqa: F811
    context = browser.new_context(viewport={"width": 360, "height": 740})
    page = context.new_page()
    page.goto(live_server.url + reverse("login"))
    page.fill("input[name=username]", patient.username)
    from tests.conftest import PASSWORD as patient_password

    page.fill("input[name=password]", patient_password)
    page.click("main button[type=submit]")
    expect(page.get_by_role("heading", name="Your appointments")).to_be_visible()
    for url in (reverse("book"), reverse("appointment", args=[appointment.reference]), reverse("patient-information")):
        page.goto(live_server.url + url)
        assert page.evaluate("document.documentElement.scrollWidth") <= 360, url
        for button in page.locator("main button:visible, main .button:visible").all():
            box = button.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 360, (url, button.inner_text())
    context.close()


def test_keyboard_reaches_the_booking_controls_with_a_visible_focus(browser, live_server, patient, clinic_week):  # noqa: F811
    context = browser.new_context(viewport=VIEWPORTS["desktop"])
    page = context.new_page()
    page.goto(live_server.url + reverse("patient-information"))  # no autofocus: Tab starts at the top
    page.keyboard.press("Tab")
    assert "skip-link" in page.evaluate("document.activeElement.className")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
    page.goto(live_server.url + reverse("login"))
    from tests.conftest import PASSWORD as patient_password

    page.fill("input[name=username]", patient.username)
    page.fill("input[name=password]", patient_password)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Your appointments")).to_be_visible()
    page.goto(live_server.url + reverse("book"))
    page.locator(".day-link").first.focus()
    page.keyboard.press("Enter")
    page.locator("input[name=slot]").first.focus()
    page.keyboard.press("ArrowRight")  # radio group: arrows move the choice
    assert page.evaluate("document.activeElement.name") == "slot"
    outline = page.evaluate("getComputedStyle(document.activeElement.nextElementSibling).outlineStyle")
    assert outline == "solid"  # the time's label shows the focus ring
    context.close()
