"""Roles as documented (docs/security.md's role table, triage.permissions.ROLE_PERMISSIONS): every role against
every staff page and staff API endpoint. Auditors read every site's cases and lab results, on the pages
and the API, and decide nothing; clinic leads also export; only admins manage model versions."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from core.models import AuditEvent
from triage.permissions import (
    AUDITORS_GROUP,
    CLINIC_LEADS_GROUP,
    CLINICIANS_GROUP,
    PATIENTS_GROUP,
)

pytestmark = pytest.mark.django_db

ROLES = ["patient", "clinician", "clinic lead", "auditor", "admin"]
READERS = {"clinician", "clinic lead", "auditor", "admin"}
DECIDERS = {"clinician", "clinic lead", "admin"}

# (name, method, url name, url args from (case, model version), body, roles allowed)
ENDPOINTS = [
    ("queue page", "get", "staff-queue", lambda c, m: [], None, READERS),
    ("case page", "get", "staff-case", lambda c, m: [c.pk], None, READERS),
    ("lab result page", "get", "staff-lab-result", lambda c, m: [c.pk], None, READERS),
    ("model card page", "get", "staff-model-card", lambda c, m: [], None, READERS),
    ("badge", "get", "staff-badge", lambda c, m: [], None, READERS),
    ("performance page", "get", "staff-performance", lambda c, m: [], None, DECIDERS),
    ("comparison page", "get", "staff-comparison", lambda c, m: [], None, DECIDERS),
    ("decisions CSV", "get", "staff-export-decisions", lambda c, m: [], None, {"clinic lead", "admin"}),
    ("record lab result (page)", "post", "staff-lab-result", lambda c, m: [c.pk], {}, DECIDERS),
    ("decide (page)", "post", "staff-decide", lambda c, m: [c.pk], {}, DECIDERS),
    ("claim (page)", "post", "staff-claim", lambda c, m: [c.pk], {}, DECIDERS),
    ("queue API", "get", "api-staff-queue", lambda c, m: [], None, READERS),
    ("case API", "get", "api-staff-case", lambda c, m: [c.pk], None, READERS),
    ("lab result API", "get", "api-staff-lab-result", lambda c, m: [c.pk], None, READERS),
    ("record lab result API", "post", "api-staff-lab-result", lambda c, m: [c.pk], {}, DECIDERS),
    ("decide API", "post", "api-staff-decide", lambda c, m: [c.pk], {}, DECIDERS),
    ("model versions API", "get", "api-model-versions", lambda c, m: [], None, {"auditor", "admin"}),
    ("promote API", "post", "api-model-version-promote", lambda c, m: [m.pk], {}, {"admin"}),
]


@pytest.fixture
def user_in_role(make_staff, clinic, admin_user):
    def make(role):
        if role == "admin":
            return admin_user
        group, clinics = {
            "patient": (PATIENTS_GROUP, []),
            "clinician": (CLINICIANS_GROUP, [clinic]),
            "clinic lead": (CLINIC_LEADS_GROUP, [clinic]),
            "auditor": (AUDITORS_GROUP, []),  # auditors: no site of their own
        }[role]
        return make_staff(f"role-{role.replace(' ', '-')}", group, clinics=clinics)

    return make


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=[endpoint[0] for endpoint in ENDPOINTS])
def test_role_on_staff_endpoint(role, endpoint, user_in_role, prediction, model_version):
    name, method, url_name, url_args, body, allowed_roles = endpoint
    client = APIClient()
    client.force_login(user_in_role(role))
    url = reverse(url_name, args=url_args(prediction.photo.case, model_version))
    headers = {"HX-Request": "true"}  # the badge answers htmx requests only
    response = client.get(url, headers=headers) if method == "get" else client.post(url, body, format="json")
    if role in allowed_roles:
        assert response.status_code in (200, 201, 302, 400), (name, response.status_code)
        if response.status_code == 302:  # a claim redirects back to its case page, not to the login page
            assert "login" not in response["Location"]
    else:
        assert response.status_code == 403, (name, response.status_code)
        if not url_name.startswith("api-"):  # a page's 403 is an audited denial (portal.errors)
            assert AuditEvent.objects.filter(action="denied_page", allowed=False).exists()


def test_an_auditor_reads_every_sites_lab_results_and_records_none(make_staff, prediction, client):
    auditor = make_staff("auditor", AUDITORS_GROUP)
    case = prediction.photo.case
    client.force_login(auditor)
    page = client.get(reverse("staff-lab-result", args=[case.pk])).content.decode()
    assert "Lab result and final diagnosis" in page and '<form method="post" action="/staff' not in page
    api = APIClient()
    api.force_login(auditor)
    assert api.get(reverse("api-staff-lab-result", args=[case.pk])).status_code == 200
    assert [row["id"] for row in api.get(reverse("api-staff-queue")).json()["results"]] == [case.pk]
    assert (
        api.post(reverse("api-staff-lab-result", args=[case.pk]), {"result": "not_tested"}, format="json").status_code
        == 403
    )
    assert not case.lab_results.exists()
    assert AuditEvent.objects.filter(actor=auditor, action="view_ground_truth").count() == 2
