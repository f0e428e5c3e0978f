"""One way to deny, and it audits (core.access.deny): every URL of the site that names an object is
requested with someone else's object (another patient's appointment, another site's case, another
clinic's ids) and must answer 403 or 404 with an audit row of the refusal (allowed=False, the rule
that refused). The URLs are enumerated from the URL configuration, so a new object URL is tested as
soon as it exists; one whose object kind the test does not know fails until it is added here."""

import pytest
from django.urls import URLResolver, get_resolver, reverse
from rest_framework.test import APIClient

from core.models import AuditEvent
from portal.fhir.api import HANDLERS
from tests.api.fhir import FhirClient, appointment_resource, media_resource, patient_resource, pcr_observation
from triage.models import Decision, Outcome, Photo
from triage.permissions import CLINICIANS_GROUP
from triage.services import record_decision

pytestmark = pytest.mark.django_db

# Patterns with arguments that name no one's object, and why they are not tested here.
NOT_OBJECTS = {
    "verify-email": "a signed token: a bad one is a page that says so",
    "sign-in-link": "a signed token: a bad one is a page that says so",
    "password_reset_confirm": "Django's signed reset token",
    "fhir-type": "a resource type, not an object (searches are scoped to the key's clinic)",
}
# FHIR resources that belong to no clinic.
FHIR_SHARED = {"Questionnaire": "the one published questionnaire", "Device": "the model versions, public"}


def url_patterns(patterns=None, prefix=""):
    """(route, name, argument names) of every pattern that takes arguments, outside the admin."""
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace != "admin":  # Django admin: model permissions, record views audited by the mixin
                yield from url_patterns(pattern.url_patterns, prefix + str(pattern.pattern))
        elif pattern.pattern.regex.groupindex:
            yield prefix + str(pattern.pattern), pattern.name, sorted(pattern.pattern.regex.groupindex)


@pytest.fixture
def world(
    make_api_key,
    make_slot,
    other_clinic,
    clinician,
    other_patient,
    make_staff,
    record_result,
    private_storage,
    enqueued,
    model_version,
):
    """Clinic A's booking system booked patient P-1's appointment A-1 (FHIR), uploaded a photo that was
    analysed and decided, and recorded a lab result; and the intruders, each with its own client."""
    _, key = make_api_key()
    fhir = FhirClient(key)
    patient_id = fhir.post("Patient", patient_resource()).fhir["id"]
    appointment_id = fhir.post("Appointment", appointment_resource(make_slot().pk, patient_id)).fhir["id"]
    assert fhir.post("Media", media_resource(appointment_id)).status_code == 201
    photo = Photo.objects.get()
    prediction = record_result(photo, 0.83)
    decision = record_decision(
        case=photo.case, clinician=clinician, outcome=Outcome.SUSPECTED, action=Decision.Action.ISOLATION_ROOM
    )
    observation_id = fhir.post("Observation", pcr_observation(appointment_id)).fhir["id"]
    consent_id = fhir.get("Consent").fhir["entry"][0]["resource"]["id"]

    other_key, other_full_key = make_api_key(other_clinic, name="Another clinic's booking system")
    other_site_clinician = make_staff("north-clinician", CLINICIANS_GROUP, clinics=[other_clinic], on_duty=True)
    return {
        "arguments": {
            "reference": photo.case.appointment.reference,
            "external_id": "A-1",
            "case_id": photo.case_id,
            "photo_id": photo.pk,
            "prediction_id": prediction.pk,
            "decision_id": decision.pk,
            "model_version_id": model_version.pk,
        },
        "fhir_ids": {
            "Patient": patient_id,
            "Appointment": appointment_id,
            "QuestionnaireResponse": appointment_id,
            "RiskAssessment": appointment_id,
            "DiagnosticReport": appointment_id,
            "Consent": consent_id,
            "Media": photo.pk,
            "Binary": photo.pk,
            "Observation": observation_id,
            "Slot": photo.case.appointment.slot_id,
        },
        "other_clinic_key": (other_key.user, other_full_key),
        "other_site_clinician": other_site_clinician,
        "other_patient": other_patient,
        "clinician": clinician,
    }


def intruder(world, route):
    """(the user the audit row must name, a client signed in as them) for someone else's object at `route`."""
    if route.startswith("api/v1/integration/"):
        user, full_key = world["other_clinic_key"]
        return user, APIClient(headers={"Authorization": f"Api-Key {full_key}"})
    user = (
        world["other_site_clinician"]
        if route.startswith(("staff/", "api/v1/staff/"))
        else world["clinician"]
        if route.startswith("api/v1/admin/")  # model operations: admins only
        else world["other_patient"]
    )
    client = APIClient()
    client.force_login(user)
    return user, client


def assert_refused_and_audited(response, before, user, what):
    assert response.status_code in (403, 404), f"{what} answered {response.status_code}"
    refusals = AuditEvent.objects.filter(pk__gt=before, actor=user, allowed=False)
    assert refusals.exists(), f"{what} answered {response.status_code} without an audit row"
    assert all(event.detail.get("rule") and event.detail.get("asked_for") for event in refusals), (
        f"{what}: not via deny()"
    )


def test_every_object_url_refuses_someone_elses_object_with_an_audit_row(world):
    tested = []
    for route, name, arguments in url_patterns():
        if name in NOT_OBJECTS or name == "fhir-instance":
            continue
        unknown = set(arguments) - set(world["arguments"])
        assert not unknown, f"{route}: no one else's {unknown} is known to this test; add one to `world`"
        url = reverse(name, kwargs={argument: world["arguments"][argument] for argument in arguments})
        user, client = intruder(world, route)
        before = AuditEvent.objects.order_by("pk").last().pk
        response = client.get(url)
        method = "GET"
        if response.status_code == 405:  # a POST-only URL: the object is looked up before the body is read
            response, method = client.post(url, {}, format="json"), "POST"
        assert_refused_and_audited(response, before, user, f"{method} {url} as {user}")
        tested.append(name)
    assert {
        "staff-case",
        "api-staff-lab-result",
        "api-my-appointment-slots",
        "api-appointment-case",
        "appointment",
        "photo-image",
        "api-model-version-promote",
    } <= set(tested)


@pytest.mark.parametrize("resource_type", sorted(set(HANDLERS) - set(FHIR_SHARED)))
def test_every_fhir_resource_of_another_clinic_is_an_audited_404(world, resource_type):
    assert HANDLERS[resource_type].read is not None
    user, full_key = world["other_clinic_key"]
    before = AuditEvent.objects.order_by("pk").last().pk
    response = FhirClient(full_key).get(f"{resource_type}/{world['fhir_ids'][resource_type]}")
    assert response.status_code == 404
    assert_refused_and_audited(response, before, user, f"FHIR {resource_type}")
    assert AuditEvent.objects.get(pk__gt=before, allowed=False).action == "fhir_read"


def test_every_fhir_resource_type_is_known_to_this_test(world):
    assert set(HANDLERS) == set(world["fhir_ids"]) | set(FHIR_SHARED)


def test_a_refused_write_names_the_element_and_is_audited_once(world):
    user, full_key = world["other_clinic_key"]
    before = AuditEvent.objects.order_by("pk").last().pk
    response = FhirClient(full_key).post("Media", media_resource(world["fhir_ids"]["Appointment"]))
    assert response.status_code == 404 and "Media.partOf: Appointment/" in response.fhir["issue"][0]["diagnostics"]
    (event,) = AuditEvent.objects.filter(pk__gt=before)
    assert (event.actor, event.action, event.allowed, event.detail["rule"]) == (user, "fhir_write", False, "key_clinic")


def test_a_denial_says_who_asked_for_what_and_which_rule_refused(world, client):
    client.force_login(world["other_site_clinician"])
    case_id = world["arguments"]["case_id"]
    assert client.get(reverse("staff-case", args=[case_id])).status_code == 404
    event = AuditEvent.objects.get(allowed=False, actor=world["other_site_clinician"])
    assert (event.action, event.detail, event.ip_address) == (
        "view_case",
        {"asked_for": f"case {case_id}", "rule": "staff_site"},
        "127.0.0.1",
    )


def test_a_role_refusal_on_the_api_is_audited_once(world):
    client = APIClient()
    client.force_login(world["other_patient"])
    assert client.get(reverse("api-staff-queue")).status_code == 403
    (event,) = AuditEvent.objects.filter(actor=world["other_patient"], allowed=False)
    assert (event.action, event.detail) == ("denied_api", {"asked_for": reverse("api-staff-queue"), "rule": "role"})
