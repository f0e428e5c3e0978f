"""The API docs pages in a real browser, with every request to another host refused: they render
from the portal's own files (drf-spectacular-sidecar)."""

from urllib.parse import urlparse

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from tests.browser.test_browser import SCREENSHOTS, browser, page  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize(
    ("name", "operation_selector"), [("api-docs", ".opblock"), ("api-redoc", "[data-section-id^='tag/']")]
)
def test_docs_pages_render_offline(page, live_server, name, operation_selector):  # noqa: F811
    local = urlparse(live_server.url).netloc
    foreign = []

    def only_local(route):
        if urlparse(route.request.url).netloc != local:
            foreign.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.route("**/*", only_local)
    page.goto(live_server.url + reverse(name))
    expect(page.locator(operation_selector).first).to_be_visible()
    assert page.get_by_text("Mpox photo triage API").first.is_visible()
    for width, height in [(1366, 900), (390, 844)]:
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=SCREENSHOTS / f"{name}-{width}.png")
    assert foreign == []
