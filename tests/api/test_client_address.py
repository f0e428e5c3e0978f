"""One client address (core.http.client_address) behind the TLS proxy, for every reader of it: the
audit log, sign-in lock-outs (axes), account rate limits (django-ratelimit), DRF throttles and the
API-key failure count. TRUSTED_PROXY_COUNT=0 trusts no X-Forwarded-For; 1 is the compose stack."""

from django.core.cache import cache
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from core.http import client_address
from core.models import AuditEvent
from core.throttling import ClientAddressThrottleMixin
from tests.conftest import PASSWORD
from triage.api import UploadRateThrottle

PROXY = "10.0.0.2"  # the compose stack's Caddy as the portal sees it


def address(xff=None, remote=PROXY):
    meta = {"REMOTE_ADDR": remote}
    if xff is not None:
        meta["HTTP_X_FORWARDED_FOR"] = xff
    return client_address(RequestFactory().get("/", **meta))


def test_without_trusted_proxies_a_forwarded_header_is_ignored(settings):
    settings.TRUSTED_PROXY_COUNT = 0
    assert address() == PROXY
    assert address("203.0.113.5") == PROXY
    assert address("198.51.100.9, 203.0.113.5") == PROXY


def test_behind_one_proxy_the_client_is_the_last_forwarded_entry(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert address("203.0.113.5") == "203.0.113.5"
    # What a client wrote itself (left of what our proxy appended) is never read.
    assert address("6.6.6.6, 203.0.113.5") == "203.0.113.5"
    assert address(" 2001:DB8:0:0::1 ") == "2001:db8::1"


def test_behind_two_proxies_the_client_is_the_second_entry_from_the_right(settings):
    settings.TRUSTED_PROXY_COUNT = 2
    assert address("6.6.6.6, 203.0.113.5, 10.0.0.3") == "203.0.113.5"


def test_a_request_that_did_not_come_through_the_proxies_has_the_peer_address(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    assert address(None, remote="192.0.2.7") == "192.0.2.7"  # e.g. a health check inside the network
    assert address("not-an-address", remote="192.0.2.7") == "192.0.2.7"
    settings.TRUSTED_PROXY_COUNT = 2
    assert address("203.0.113.5", remote="192.0.2.7") == "192.0.2.7"


def test_the_audit_log_records_the_client_behind_the_proxy(client, patient, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    client.post(
        reverse("login"),
        {"username": "patient", "password": "wrong"},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.5",
    )
    assert AuditEvent.objects.get(action="login_failed").ip_address == "203.0.113.5"


def sign_in(client, password, forwarded_for):
    return client.post(
        reverse("login"),
        {"username": "patient", "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_behind_the_proxy_a_sign_in_lock_out_is_one_client_s_not_everyone_s(client, patient, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "guess", "203.0.113.5")
    assert sign_in(client, PASSWORD, "203.0.113.5").status_code == 429
    assert sign_in(client, PASSWORD, "198.51.100.9").status_code == 302  # another client signs in


def test_a_spoofed_forwarded_header_from_an_untrusted_peer_does_not_dodge_the_lock_out(client, patient, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        sign_in(client, "guess", f"203.0.113.{attempt}")
    assert sign_in(client, PASSWORD, "198.51.100.9").status_code == 429


def test_account_rate_limits_count_each_client_behind_the_proxy_apart(db, client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for attempt in range(5):
        client.post(
            reverse("sign-in-link-request"),
            {"email": f"a{attempt}@example.org"},
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR="203.0.113.5",
        )
    link = {"email": "a9@example.org"}
    assert (
        client.post(
            reverse("sign-in-link-request"), link, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.5"
        ).status_code
        == 429
    )
    assert (
        client.post(
            reverse("sign-in-link-request"), link, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="198.51.100.9"
        ).status_code
        == 200
    )


def view_classes(patterns):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from view_classes(pattern.url_patterns)
        elif isinstance(pattern, URLPattern) and hasattr(pattern.callback, "cls"):
            yield pattern.callback.cls


def test_every_drf_throttle_counts_by_the_one_client_address(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    throttles = {throttle for view in view_classes(get_resolver().url_patterns) for throttle in view.throttle_classes}
    assert UploadRateThrottle in throttles
    assert all(issubclass(throttle, ClientAddressThrottleMixin) for throttle in throttles), throttles
    request = RequestFactory().get("/", REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert UploadRateThrottle().get_ident(request) == "203.0.113.5"


def key_client(full_key, forwarded_for):
    return APIClient(
        headers={"Authorization": f"Api-Key {full_key}"}, REMOTE_ADDR=PROXY, HTTP_X_FORWARDED_FOR=forwarded_for
    )


def test_a_broken_integration_behind_the_proxy_does_not_lock_out_another(make_api_key, other_clinic, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    _, broken_key = make_api_key(name="Broken booking system")
    _, good_key = make_api_key(other_clinic, name="Working booking system")
    broken = key_client(broken_key.split(".")[0] + ".an-old-secret", "203.0.113.5")
    codes = [broken.get(reverse("api-slots")).status_code for _ in range(settings.API_KEY_FAILURE_LIMIT + 1)]
    assert codes == [401] * settings.API_KEY_FAILURE_LIMIT + [429]
    assert key_client(good_key, "198.51.100.9").get(reverse("api-slots")).status_code == 200
    failures = AuditEvent.objects.filter(action="api_key_failed")
    assert set(failures.values_list("ip_address", flat=True)) == {"203.0.113.5"}


def test_failures_on_one_key_prefix_from_many_addresses_lock_that_prefix_only(make_api_key, other_clinic, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.API_KEY_FAILURE_LIMIT = 3
    guessed, guessed_key = make_api_key(name="Guessed")
    _, other_key = make_api_key(other_clinic, name="Other")
    prefix = guessed_key.split(".")[0]
    for attempt in range(3):
        assert (
            key_client(f"{prefix}.guess-{attempt}", f"203.0.113.{attempt}").get(reverse("api-slots")).status_code == 401
        )
    assert key_client(f"{prefix}.guess-9", "203.0.113.9").get(reverse("api-slots")).status_code == 429
    assert key_client(other_key, "203.0.113.9").get(reverse("api-slots")).status_code == 200


def test_a_spoofed_forwarded_header_from_an_untrusted_peer_is_counted_as_the_peer(make_api_key, settings):
    settings.TRUSTED_PROXY_COUNT = 0
    settings.API_KEY_FAILURE_LIMIT = 3
    _, full_key = make_api_key()
    for attempt in range(3):
        assert key_client(f"guess{attempt}.x", f"203.0.113.{attempt}").get(reverse("api-slots")).status_code == 401
    assert key_client(full_key, "198.51.100.9").get(reverse("api-slots")).status_code == 429
    assert cache.get(f"api-key-failures:address:{PROXY}") == 3
