"""Error reporting is switched on by SENTRY_DSN alone: an error logged by the portal reaches a
Sentry-protocol endpoint (a small HTTP receiver started by the test); without the setting the SDK
is never initialised."""

import gzip
import http.server
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class EnvelopeReceiver(http.server.BaseHTTPRequestHandler):
    received = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.received.append((self.path, body.decode(errors="replace")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def sentry_receiver():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EnvelopeReceiver)
    EnvelopeReceiver.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://publickey@127.0.0.1:{server.server_address[1]}/42", EnvelopeReceiver.received
    server.shutdown()


def run_portal_python(code, **env):
    """`code` in a fresh portal process whose environment has no SENTRY_DSN unless given."""
    base = {key: value for key, value in os.environ.items() if key != "SENTRY_DSN"}
    return subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**base, "PORTAL_ALLOW_INSECURE_KEY": "1", **env},
    )


def test_an_error_is_reported_when_sentry_dsn_is_set(sentry_receiver):
    dsn, received = sentry_receiver
    marker = f"probe-{uuid.uuid4().hex}"
    result = run_portal_python(f"import logging; logging.getLogger('triage').error('{marker}')", SENTRY_DSN=dsn)
    assert result.returncode == 0, result.stderr[-2000:]
    assert any(path == "/api/42/envelope/" and marker in body for path, body in received), received


def test_nothing_is_initialised_without_sentry_dsn():
    result = run_portal_python("import sentry_sdk; print('initialised', sentry_sdk.is_initialized())")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "initialised False" in result.stdout
