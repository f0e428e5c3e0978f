"""Hypothesis over the page URLs: every URL pattern outside the admin and the API (those have their own
fuzzing, tests/api/test_fuzz_api.py), enumerated from the URL configuration, with its parameters and a
query string drawn from ordinary, hostile (NUL, control characters) and oversize text, requested by a
signed-in patient and a signed-in clinician: no answer is a 5xx. Bounded and derandomised."""

import re
from urllib.parse import quote, urlencode

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.slow, pytest.mark.django_db]  # about 15 s

PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
SKIPPED_PREFIXES = ("admin/", "api/")
HOSTILE_TEXT = ["\x00", "\x01", "\x1b", "\x7f", "\u0085", "\n", "x" * 5_000, "%00", "..", "\u200b", "＝1"]
QUERY_NAMES = [
    "start",
    "end",
    "version",
    "clinic",
    "page",
    "show",
    "period",
    "site",
    "mine",
    "search",
    "day",
    "next",
    "x",
    "y",
    "width",
    "height",
    "language",
]


def page_routes(patterns=None, prefix=""):
    """Every route string (Django path syntax) of the pages, e.g. "appointments/<str:reference>/"."""
    routes = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(entry.pattern)
        if route.startswith(SKIPPED_PREFIXES):
            continue
        if isinstance(entry, URLResolver):
            routes += page_routes(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            routes.append(route)
    return routes


segments = st.one_of(
    st.text(min_size=1, max_size=20),
    st.sampled_from(HOSTILE_TEXT),
    st.integers(0, 10**12).map(str),
)
queries = st.dictionaries(st.one_of(st.sampled_from(QUERY_NAMES), st.text(max_size=8)), segments, max_size=3)


@st.composite
def page_requests(draw, routes):
    route = draw(st.sampled_from(routes))
    path = PARAMETER.sub(lambda match: quote(draw(segments), safe=""), route)
    return "/" + path, urlencode(draw(queries))


@pytest.fixture
def routes():
    found = page_routes()
    assert "staff/cases/<int:case_id>/" in found and "appointments/<str:reference>/" in found
    return found


@pytest.mark.parametrize("role", ["patient", "clinician"])
def test_no_page_url_answers_a_server_error(role, routes, request, client, appointment, clinician, private_storage):
    client.force_login(request.getfixturevalue(role))
    server_errors = []

    @given(page_requests(routes))
    @settings(max_examples=150, derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def visit(url):
        path, query = url
        response = client.get(path, QUERY_STRING=query)
        if response.status_code >= 500:
            server_errors.append(f"{path}?{query} -> {response.status_code}")

    visit()
    assert server_errors == []
