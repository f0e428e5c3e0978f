"""Fixtures for the API tests: API keys, clients (integration by key, people by session) and a real
HTTP receiver for webhooks on 127.0.0.1."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from portal.booking.models import Clinic
from portal.integrations.services import create_api_key


@pytest.fixture(autouse=True)
def empty_cache():
    """Throttle and failed-key counters start from zero in every test."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_api_key(clinic):
    """make_api_key(clinic=None, name="Booking system") -> (ApiKey, full key text)."""

    def make(for_clinic=None, name="Booking system"):
        return create_api_key(clinic=for_clinic or clinic, name=name)

    return make


@pytest.fixture
def api_key(make_api_key):
    return make_api_key()


@pytest.fixture
def key_client(api_key):
    """An APIClient sending `Authorization: Api-Key <key>` of `clinic`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key[1]}")
    return client


@pytest.fixture
def other_clinic(db):
    return Clinic.objects.create(name="Other Clinic")


@pytest.fixture
def session_client():
    """session_client(user) -> an APIClient signed in as `user` (browser session)."""

    def make(user):
        client = APIClient()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def deliveries_sent(monkeypatch):
    """Webhook deliveries queued (ids), recorded where `.delay` would send them to the broker."""
    sent = []
    monkeypatch.setattr("portal.integrations.tasks.deliver_webhook_task.delay", sent.append)
    return sent


class Receiver:
    """A webhook receiver: answers with the next of `codes` (then 200) and keeps every request."""

    def __init__(self):
        self.codes = []
        self.requests = []
        self.received = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(
                    {"headers": dict(self.headers), "body": body, "json": json.loads(body), "at": time.monotonic()}
                )
                code = receiver.codes.pop(0) if receiver.codes else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.received.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/triage"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    receiver = Receiver()
    yield receiver
    receiver.close()
