"""Malformed and hostile requests (issue 24's nine 500s and their class) answer 400/404/413 and store
nothing: control characters in paths and query strings, JSON nested too deeply, too large or holding
control characters, values longer than their database column."""

import json

import pytest
from django.contrib.auth.models import User
from django.urls import reverse
from rest_framework import serializers

from core.models import AuditEvent
from modelops import serializers as modelops_serializers
from portal.integrations import serializers as integration_serializers
from portal.integrations.models import ExternalPatient
from portal.parsers import JSON_MAX_DEPTH
from triage import serializers as triage_serializers
from triage.views import _csv_safe

pytestmark = pytest.mark.django_db


def stored_rows():
    return {model.__name__: model.objects.count() for model in (AuditEvent, ExternalPatient, User)}


@pytest.mark.parametrize(
    "path",
    [
        "/appointments/%00/",
        "/appointments/%00/photos/status/",
        "/api/v1/me/appointments/%00/photos/",
        "/api/v1/me/appointments/%00/",
        "/appointments/A%01B/",
    ],
)
def test_a_control_character_in_a_patients_path_is_a_400(client, patient, path):
    client.force_login(patient)
    before = stored_rows()
    response = client.get(path)
    assert response.status_code == 400
    assert stored_rows() == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/integration/patients/%00/",
        "/api/v1/integration/appointments/%00/photos/",
        "/api/v1/integration/appointments/%00/case/",
        "/api/v1/integration/appointments/%00/",
    ],
)
def test_a_nul_in_an_integration_path_is_a_400(key_client, path):
    before = stored_rows()
    response = key_client.get(path)
    assert response.status_code == 400
    assert "control character" in response.json()["detail"]
    assert stored_rows() == before


@pytest.mark.parametrize("query", ["start=%00", "version=%00", "end=2026-01-01%1B", "%00=1", "start=%C2%85"])
def test_a_control_character_in_an_audited_pages_query_is_a_400_without_an_audit_row(client, clinician, query):
    client.force_login(clinician)
    before = stored_rows()
    for page in ("staff-performance", "staff-comparison", "staff-queue"):
        assert client.get(f"{reverse(page)}?{query}").status_code == 400
    assert stored_rows() == before


def test_ordinary_paths_and_queries_still_work(client, clinician):
    client.force_login(clinician)
    assert client.get(f"{reverse('staff-queue')}?search=Ana%20Mar%C3%ADa").status_code == 200
    assert client.get(reverse("staff-performance")).status_code == 200


def post_json(client, body: str, **extra):
    return client.generic("POST", reverse("api-patients"), body, content_type="application/json", **extra)


def test_an_email_longer_than_its_column_is_a_400(key_client):
    before = stored_rows()
    response = post_json(key_client, json.dumps({"external_id": "P-1", "email": "a" * 290 + "@example.org"}))
    assert response.status_code == 400
    assert "email" in response.json()
    assert stored_rows() == before


def test_a_hundred_thousand_brackets_are_a_400_not_a_recursion_error(key_client):
    before = stored_rows()
    response = post_json(key_client, "[" * 100_000)
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]
    assert stored_rows() == before


def test_nesting_is_limited_even_below_the_json_modules_own_limit(key_client):
    too_deep = {"external_id": "P-1", "email": ""}
    for _ in range(JSON_MAX_DEPTH):
        too_deep = {"x": too_deep}
    assert post_json(key_client, json.dumps(too_deep)).status_code == 400
    assert not ExternalPatient.objects.exists()


@pytest.mark.parametrize("text", ["P\u0000-1", "P-1\u001b", "P-\ud800"])
def test_a_control_character_or_lone_surrogate_in_a_json_string_is_a_400(key_client, text):
    before = stored_rows()
    body = json.dumps({"external_id": "P-1", text: "x"})  # in a key
    assert post_json(key_client, body).status_code == 400
    body = json.dumps({"external_id": text})  # json.dumps writes \\u0000 escapes: valid JSON
    response = post_json(key_client, body)
    assert response.status_code == 400
    assert "control character" in response.json()["detail"]
    assert stored_rows() == before


def test_tabs_and_newlines_in_json_text_are_still_accepted(key_client, slot):
    assert post_json(key_client, json.dumps({"external_id": "P-1"})).status_code == 201
    body = {
        "external_id": "A-1",
        "patient_external_id": "P-1",
        "slot": slot.pk,
        "consent_care": True,
        "symptoms": "Line one.\n\tLine two.\r\n",
    }
    response = key_client.post(reverse("api-appointments"), body, format="json")
    assert response.status_code == 201, response.content


def test_a_json_body_over_the_upload_limit_is_refused_before_it_is_read(key_client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    padding = "x" * 1000
    before = stored_rows()
    response = post_json(key_client, json.dumps({"external_id": "P-1", "email": "", "padding": padding}))
    assert response.status_code == 413
    # A false, small Content-Length does not let a larger body through either.
    response = post_json(
        key_client,
        json.dumps({"external_id": "P-1", "padding": padding}),
        CONTENT_LENGTH="10",
    )
    assert response.status_code in (400, 413)
    assert stored_rows() == before
    small = post_json(key_client, json.dumps({"external_id": "P-1"}))
    assert small.status_code == 201


def test_every_request_serializers_text_field_has_a_length_limit():
    """Text from a request reaches a database column only within that column's length."""
    request_serializers = [
        cls
        for module in (integration_serializers, triage_serializers, modelops_serializers)
        for name, cls in vars(module).items()
        if isinstance(cls, type) and issubclass(cls, serializers.Serializer) and name.endswith("RequestSerializer")
    ]
    assert len(request_serializers) >= 4
    for serializer_class in request_serializers:
        for name, field in serializer_class().fields.items():
            if isinstance(field, serializers.CharField) and not field.read_only:
                assert field.max_length is not None, f"{serializer_class.__name__}.{name} has no max_length"


def test_external_ids_and_email_take_their_limits_from_the_models():
    fields = integration_serializers.PatientRequestSerializer().fields
    assert fields["email"].max_length == User._meta.get_field("email").max_length
    assert fields["external_id"].max_length == ExternalPatient._meta.get_field("external_id").max_length


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x")',
        "＝1+1",
        "\u200b=1+1",
        "\ufeff@SUM(A1)",
        " \u200d+1",
        "\u00a0-2",
        "＠x",
        "\t=1",
    ],
)
def test_the_csv_formula_guard_sees_full_width_and_invisible_prefixes(text):
    assert _csv_safe(text) == "'" + text


@pytest.mark.parametrize("text", ["Follow-up in 2 weeks", "a = b", "", "Ana María", "1-2"])
def test_the_csv_formula_guard_leaves_ordinary_text_alone(text):
    assert _csv_safe(text) == text


def test_a_json_body_just_over_the_default_limit_is_refused(key_client, settings):
    """The issue's case: 15-20 MB JSON bodies passed, although DATA_UPLOAD_MAX_MEMORY_SIZE is 16 MiB + 1 MiB."""
    padding = "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = post_json(key_client, json.dumps({"external_id": "P-1", "padding": padding}))
    assert response.status_code == 413
    assert not ExternalPatient.objects.exists()


def test_the_limited_parser_is_every_api_views_json_parser(session_client, clinician, appointment):
    """The staff API's decision endpoint refuses a NUL in a note the same way (one parser, set as default)."""
    response = session_client(clinician).post(
        reverse("api-staff-decide", args=[appointment.case.pk]),
        {"outcome": "not_suspected", "action": "standard", "note": "ok\u0000"},
        format="json",
    )
    assert response.status_code == 400
    assert "control character" in response.json()["detail"]
    assert not appointment.case.decisions.exists()
