"""The documentation site (mkdocs.yml, docs/) built as CI builds it, served from the built files and
opened in Chromium with every request to another host refused: the OpenAPI page draws the committed
docs/openapi.yaml with the Swagger UI files bundled in the build, the model card page shows
ml/checkpoints/MODEL_CARD.md as it is, and no page scrolls sideways on a phone."""

import functools
import os
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from tests.browser.test_browser import SCREENSHOTS, browser, page  # noqa: F401  (fixtures)
from tests.workers import ROOT

pytestmark = pytest.mark.slow

MKDOCS = Path(sys.executable).parent / "mkdocs"
PAGES = ["", "quickstart/", "api/", "openapi/", "model-card/", "patient-journey/"]


@pytest.fixture(scope="module")
def site_url(tmp_path_factory):
    """The site built strictly into a fresh folder and served over HTTP on a free local port."""
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [str(MKDOCS), "build", "--strict", "--quiet", "--site-dir", str(site)],
        cwd=ROOT,
        check=True,
        timeout=120,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/"
    server.shutdown()


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def refuse_foreign_requests(page, site_url):  # noqa: F811
    """Abort every request to another host; returns the list they are recorded in."""
    local, foreign = urlparse(site_url).netloc, []

    def only_local(route):
        if urlparse(route.request.url).netloc != local:
            foreign.append(route.request.url)
            return route.abort()
        return route.continue_()

    page.context.route("**/*", only_local)
    return foreign


def test_the_openapi_page_draws_the_committed_schema_offline(page, site_url):  # noqa: F811
    foreign = refuse_foreign_requests(page, site_url)

    page.goto(site_url + "openapi/")

    swagger = page.frame_locator("iframe.swagger-ui-iframe")
    expect(swagger.get_by_text("Mpox photo triage API").first).to_be_visible()
    expect(swagger.locator(".opblock").first).to_be_visible()
    assert swagger.locator(".opblock-summary-path", has_text="/api/v1/integration/appointments/").count() >= 1
    page.screenshot(path=SCREENSHOTS / "docs-openapi.png")
    assert foreign == []


def test_the_model_card_page_is_the_model_card(page, site_url):  # noqa: F811
    page.goto(site_url + "model-card/")

    first_line = (ROOT / "ml" / "checkpoints" / "MODEL_CARD.md").read_text().splitlines()[0]
    assert first_line.startswith("# Model card")
    expect(page.locator("h1")).to_contain_text(first_line.removeprefix("# ").replace("`", ""))
    expect(page.locator("h3", has_text="Known blind spots").first).to_be_visible()  # the shipped model's


@pytest.mark.parametrize("width", [390, 1366])
def test_every_page_fits_the_width_and_loads_nothing_from_elsewhere(page, site_url, width):  # noqa: F811
    foreign = refuse_foreign_requests(page, site_url)
    page.set_viewport_size({"width": width, "height": 900})

    for path in PAGES:
        page.goto(site_url + path)
        page.wait_for_load_state("networkidle")
        assert page.evaluate("document.documentElement.scrollWidth") <= width, path
    page.screenshot(path=SCREENSHOTS / f"docs-patient-journey-{width}.png")
    assert foreign == []
