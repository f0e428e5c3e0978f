"""With DEBUG=0, gunicorn serves the stylesheet and scripts itself (whitenoise): hashed names,
compressed, long-cached; a real browser renders the sign-in page styled."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = ROOT / "out" / "screenshots"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def production_server(tmp_path):
    """gunicorn with the production settings module and DEBUG=0, after `collectstatic`."""
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "DEBUG": "0",
        "SECRET_KEY": "test-only-secret-key-for-the-static-files-check-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1",
        "PORTAL_VAR_DIR": str(tmp_path / "var"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        "SECURE_COOKIES": "0",
        "SECURE_SSL_REDIRECT": "0",
        "SECURE_HSTS_SECONDS": "0",
    }
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = open(tmp_path / "gunicorn.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "gunicorn.log").read_text())
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=30)
    log.close()


def test_stylesheet_is_served_hashed_and_compressed_with_debug_off(production_server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(production_server + "/accounts/login/")
        href = page.get_attribute("link[rel=stylesheet]", "href")
        assert href.startswith("/static/css/portal.") and href.endswith(".css") and href != "/static/css/portal.css"

        response = page.request.get(production_server + href, headers={"Accept-Encoding": "gzip"})
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/css")
        assert response.headers.get("content-encoding") == "gzip"
        assert "immutable" in response.headers["cache-control"]
        # The page really is styled: the stylesheet's background colour (--paper) is applied.
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(245, 247, 249)"
        page.screenshot(path=SCREENSHOTS / "production-login-phone.png", full_page=True)
        browser.close()
