import pytest
from django.urls import reverse

from core.models import AuditEvent
from registry.models import ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


def test_changelists_load(admin_client, prediction):
    for model in [
        "booking/clinic",
        "booking/slot",
        "booking/appointment",
        "triage/case",
        "triage/photo",
        "triage/prediction",
        "registry/modelversion",
        "triage/decision",
        "core/auditevent",
    ]:
        assert admin_client.get(f"/admin/{model}/").status_code == 200, model


def test_predictions_are_read_only(admin_client, prediction):
    url = reverse("admin:triage_prediction_change", args=[prediction.pk])

    page = admin_client.get(url)

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert admin_client.get(reverse("admin:triage_prediction_add")).status_code == 403
    assert admin_client.post(url, {"probability": 0.01}).status_code == 403
    assert admin_client.get(reverse("admin:triage_prediction_delete", args=[prediction.pk])).status_code == 403


def test_appointments_are_read_only_their_status_changes_through_the_booking_services(admin_client, appointment):
    url = reverse("admin:booking_appointment_change", args=[appointment.pk])

    page = admin_client.get(url).content.decode()

    assert appointment.reference in page and 'name="_save"' not in page and 'name="status"' not in page
    assert admin_client.post(url, {"status": "cancelled"}).status_code == 403
    appointment.refresh_from_db()
    assert appointment.status == "booked" and appointment.case.is_open


def test_audit_events_are_read_only(admin_client, prediction):
    event = AuditEvent.objects.create(action="view_photo", object_type="photo", object_id="1")

    page = admin_client.get(reverse("admin:core_auditevent_change", args=[event.pk]))

    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()


def test_make_challenger_action_runs_a_version_in_shadow_without_activating_it(admin_client, model_version):
    """Activation is by promotion only (tests/modelops/test_challenger.py), after the version ran as challenger."""
    other = ModelVersion.objects.create(version="v2", architecture="tiny", checkpoint_path="/x.pt", threshold=0.5)

    admin_client.post(
        reverse("admin:registry_modelversion_changelist"),
        {
            "action": "make_challenger",
            "_selected_action": [other.pk],
        },
    )

    assert ModelVersion.objects.get(is_challenger=True) == other
    assert ModelVersion.objects.get(is_active=True) == model_version
    assert AuditEvent.objects.filter(action="make_challenger", object_id=str(other.pk)).exists()


def test_case_and_photo_pages_load(admin_client, prediction):
    assert admin_client.get(reverse("admin:triage_case_change", args=[prediction.photo.case_id])).status_code == 200
    page = admin_client.get(reverse("admin:triage_photo_change", args=[prediction.photo_id]))
    assert reverse("photo-image", args=[prediction.photo_id]) in page.content.decode()


@pytest.mark.parametrize("model", ["triage_case", "triage_photo", "registry_modelversion"])
def test_service_made_rows_cannot_be_added_in_admin(admin_client, model):
    assert admin_client.get(reverse(f"admin:{model}_add")).status_code == 403


def test_model_version_fields_are_read_only_except_activation(admin_client, model_version):
    page = admin_client.get(reverse("admin:registry_modelversion_change", args=[model_version.pk])).content.decode()
    assert 'name="threshold"' not in page and 'name="checkpoint_path"' not in page


def test_prediction_admin_shows_the_outcome_and_why_a_photo_was_not_assessable(admin_client, photo, record_result):
    judged_out = record_result(photo, 0.9, reason="not_skin")

    listing = admin_client.get(reverse("admin:triage_prediction_changelist"), {"outcome": "not_assessable"})
    detail = admin_client.get(reverse("admin:triage_prediction_change", args=[judged_out.pk]))

    assert "Not assessable" in listing.content.decode() and "not_skin" in listing.content.decode()
    assert "Not a skin photo" in detail.content.decode()
