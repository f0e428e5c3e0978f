"""Property-based fuzzing of the FHIR endpoints (hypothesis): whatever a client sends — any resource type,
id, search parameter, method, body or content type, and valid resources with one element replaced by
junk — the answer is never a 5xx and is always valid FHIR (a resource, a Bundle or an OperationOutcome)."""

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from portal.fhir.api import HANDLERS
from tests.api.fhir import (
    FhirClient,
    answers_resource,
    appointment_resource,
    assert_valid_fhir,
    media_resource,
    patient_resource,
    pcr_observation,
)

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
RESOURCE_TYPES = sorted(HANDLERS) + ["Encounter", "Binary2", "patient"]
PARAMETER_NAMES = sorted({name for handler in HANDLERS.values() for name in handler.search_parameters}) + [
    "_count",
    "_offset",
    "_format",
    "name",
    "_id",
]
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
ids = st.text(alphabet="0123456789abcXYZ-.", min_size=1, max_size=12) | st.integers(0, 2**70).map(str)


def answer_is_fine(response):
    assert response.status_code < 500, response.content[:500]
    if response.status_code == 200 and response["Content-Type"] == "image/jpeg":
        return
    assert response["Content-Type"].startswith("application/fhir+json"), response["Content-Type"]
    assert_valid_fhir(json.loads(response.content))


@pytest.fixture
def fhir(api_key, slot, private_storage, enqueued):
    """A key of the clinic with a patient and an appointment already booked through FHIR."""
    client = FhirClient(api_key[1])
    patient = client.post("Patient", patient_resource()).fhir
    client.post("Appointment", appointment_resource(slot.pk, patient["id"]))
    return client


@FUZZ
@given(
    resource_type=st.sampled_from(RESOURCE_TYPES),
    resource_id=ids,
    params=st.dictionaries(st.sampled_from(PARAMETER_NAMES) | st.text(max_size=6), st.text(max_size=25), max_size=4),
)
def test_reads_and_searches_never_fail(fhir, resource_type, resource_id, params):
    answer_is_fine(fhir.raw("get", resource_type, data=params))
    answer_is_fine(fhir.raw("get", f"{resource_type}/{resource_id}", data=params))


@FUZZ
@given(
    resource_type=st.sampled_from(RESOURCE_TYPES),
    resource_id=ids,
    body=json_values,
    method=st.sampled_from(["post", "put", "patch", "delete"]),
    content_type=st.sampled_from(["application/fhir+json", "application/json", "text/plain", "application/xml"]),
)
def test_any_body_to_any_endpoint_never_fails(fhir, resource_type, resource_id, body, method, content_type):
    path = resource_type if method == "post" else f"{resource_type}/{resource_id}"
    answer_is_fine(fhir.raw(method, path, data=json.dumps(body), content_type=content_type))


def valid_bodies():
    return st.sampled_from(
        [
            ("post", "Patient", patient_resource("P-2")),
            ("post", "Appointment", appointment_resource(1, 1, "A-9")),
            ("put", "QuestionnaireResponse/1", answers_resource(1)),
            ("post", "Media", media_resource(1, data=b"\xff\xd8 not really a jpeg")),
            ("post", "Observation", pcr_observation(1)),
            ("put", "Appointment/1", {**appointment_resource(1, 1), "id": "1"}),
        ]
    )


@FUZZ
@given(request=valid_bodies(), element=st.text(max_size=12), junk=json_values, data=st.data())
def test_valid_resources_with_one_element_replaced_never_fail(fhir, request, element, junk, data):
    method, path, body = request
    key = data.draw(st.sampled_from(sorted(body) + [element]))
    answer_is_fine(fhir.raw(method, path, data=json.dumps({**body, key: junk}), content_type="application/fhir+json"))
