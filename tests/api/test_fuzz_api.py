"""Fuzzing that keeps issue 24's class of 500s closed: schemathesis generates requests for every
operation of the API schema, with NUL, other control characters and oversize strings put into the
path and query parameters, sent in-process (WSGI) with an API key and an admin's session: 0 answers
5xx. Bounded: a fixed number of examples per operation, derandomised, no example database."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.integrations.services import book_external_appointment, register_patient

pytestmark = [pytest.mark.slow, pytest.mark.django_db]  # about 20 s

HOSTILE_TEXT = [
    "\x00",
    "A-1\x00",
    "\x00\x00\x00",
    "\x01",
    "\x08",
    "\x1b[31m",
    "\x7f",
    "\u0085",
    "\t",
    "\n",
    "\r\n",
    "x" * 5_000,
    "9" * 400,
    "%00",
    "../..",
    "' OR 1=1 --",
    "\u200b",
    "＝1+1",
]
EXAMPLES_PER_OPERATION = 12


def with_one_hostile_value(values, names):
    """A strategy: `values` with one of the parameters set to a hostile string."""
    names = sorted(set(values or {}) | set(names))
    if not names:
        return st.just(values)
    return st.tuples(st.sampled_from(names), st.sampled_from(HOSTILE_TEXT)).map(
        lambda pick: {**(values or {}), pick[0]: pick[1]}
    )


@pytest.fixture
def in_process_application(settings, private_storage):
    """The WSGI application, called in this process on the test's database transaction."""
    settings.API_KEY_FAILURE_LIMIT = 10_000  # generated requests without a valid key must not lock the key out
    # The handler closes the database connection around each request, and the test's transaction lives
    # on it: Django's own test client disconnects the same receiver while it calls the application.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield get_wsgi_application()
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(in_process_application):
    schema = schemathesis.openapi.from_wsgi("/api/v1/schema/", in_process_application)

    @schema.hook
    def flatmap_path_parameters(context, path_parameters):
        return with_one_hostile_value(
            path_parameters, [parameter.name for parameter in context.operation.path_parameters]
        )

    @schema.hook
    def flatmap_query(context, query):
        return with_one_hostile_value(query, [parameter.name for parameter in context.operation.query])

    return schema


@pytest.fixture
def credentials(make_api_key, make_slot, admin_user):
    """An API key of the clinic with a patient and a booking, and an admin's session (CSRF token set)."""
    api_key, full_key = make_api_key()
    patient, _ = register_patient(api_key=api_key, external_id="P-1")
    book_external_appointment(
        api_key=api_key, external_id="A-1", patient=patient, slot=make_slot(24), consent_care=True
    )
    browser = Client()
    browser.force_login(admin_user)
    csrf = "a" * 32
    return {
        "Authorization": f"Api-Key {full_key}",
        "Cookie": f"sessionid={browser.cookies['sessionid'].value}; csrftoken={csrf}",
        "X-CSRFToken": csrf,
    }


def test_hostile_path_and_query_parameters_never_get_a_server_error(api_schema, credentials):
    server_errors = []
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 15
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        def send(case):
            response = case.call(headers=credentials)
            if response.status_code >= 500:
                server_errors.append(f"{case.method} {case.formatted_path} {case.query} -> {response.status_code}")

        send()
    assert server_errors == []
