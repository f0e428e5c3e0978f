"""Webhooks: triage events → signed deliveries to a real HTTP receiver on 127.0.0.1, retries, log."""

import hashlib
import hmac
import time

import pytest
from django.urls import reverse

from portal.booking.services import cancel_appointment, reschedule_appointment
from portal.integrations import signing
from portal.integrations.models import ExternalAppointment, WebhookDelivery, WebhookEndpoint
from portal.integrations.tasks import deliver_webhook_task
from triage.analysis import analyse_photos
from triage.services import record_decision

pytestmark = pytest.mark.django_db


def expected_signature(secret, header, body):
    """The receiver's side, written out independently of portal.integrations.signing."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    digest = hmac.new(secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    return parts, digest


@pytest.fixture
def endpoint(clinic, receiver):
    return WebhookEndpoint.objects.create(clinic=clinic, url=receiver.url)


def test_signature_round_trip_and_refusals():
    body = b'{"a":1}'
    header = signing.signature_header("whsec_x", body, timestamp=1_700_000_000)
    assert signing.verify("whsec_x", header, body, now=1_700_000_010)
    assert not signing.verify("whsec_y", header, body, now=1_700_000_010)  # other secret
    assert not signing.verify("whsec_x", header, b'{"a":2}', now=1_700_000_010)  # body changed
    assert not signing.verify("whsec_x", header, body, now=1_700_000_000 + 301)  # too old: a replay
    assert not signing.verify("whsec_x", "garbage", body)


def test_a_decision_is_delivered_signed(
    endpoint, receiver, prediction, clinician, deliveries_sent, django_capture_on_commit_callbacks
):
    case = prediction.photo.case
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(
            case=case, clinician=clinician, outcome="suspected", action="isolation_room", note="secret note"
        )
    delivery = WebhookDelivery.objects.get(event_type="case.decided")
    assert deliveries_sent == [delivery.pk]

    deliver_webhook_task.apply(args=[delivery.pk])

    (request,) = receiver.requests
    headers, body = request["headers"], request["body"]
    parts, digest = expected_signature(endpoint.secret, headers["X-Triage-Signature"], body)
    assert hmac.compare_digest(parts["v1"], digest)
    assert abs(int(parts["t"]) - time.time()) < 60
    assert headers["X-Triage-Event"] == "case.decided" and headers["X-Triage-Delivery"] == str(delivery.event_id)
    event = request["json"]
    assert event["type"] == "case.decided" and event["id"] == str(delivery.event_id)
    assert event["data"]["appointment"]["reference"] == case.appointment.reference
    assert event["data"]["decision"]["action"] == "isolation_room"
    assert "secret note" not in body.decode() and "0.83" not in body.decode() and "probability" not in body.decode()
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 1, 200)


def test_a_500_is_retried_and_the_log_shows_both_attempts(
    endpoint, receiver, prediction, clinician, deliveries_sent, django_capture_on_commit_callbacks
):
    receiver.codes = [500]
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    delivery = WebhookDelivery.objects.get()

    deliver_webhook_task.apply(args=[delivery.pk])  # eager: the retry runs at once instead of after the backoff

    assert len(receiver.requests) == 2
    assert receiver.requests[0]["body"] == receiver.requests[1]["body"]  # same event, same body
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("delivered", 2, 200)


def test_a_delivery_fails_for_good_after_the_last_attempt(
    endpoint, receiver, prediction, clinician, deliveries_sent, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 3
    receiver.codes = [500, 502, 503, 200]
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    delivery = WebhookDelivery.objects.get()
    deliver_webhook_task.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", 3, 503)
    assert delivery.last_error == "HTTP 503"


def test_an_unreachable_endpoint_is_logged(
    clinic, prediction, clinician, deliveries_sent, settings, django_capture_on_commit_callbacks
):
    settings.WEBHOOK_MAX_ATTEMPTS = 1
    WebhookEndpoint.objects.create(clinic=clinic, url="http://127.0.0.1:9/nothing-listens-here")
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    delivery = WebhookDelivery.objects.get()
    deliver_webhook_task.apply(args=[delivery.pk])
    delivery.refresh_from_db()
    assert delivery.status == "failed" and delivery.response_code is None and delivery.last_error


def test_a_case_flag_is_announced_once(
    endpoint, photo, record_result, deliveries_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record_result(photo, 0.9)
    with django_capture_on_commit_callbacks(execute=True):
        record_result(photo, 0.95)  # still flagged: no second event
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "case.flagged"
    assert delivery.payload["data"]["case"] == {"id": photo.case_id, "outcome": "pending", "flagged": True}


def test_an_unflagged_result_sends_nothing(
    endpoint, photo, record_result, deliveries_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record_result(photo, 0.1)
    assert not WebhookDelivery.objects.exists()


def test_a_rejected_photo_asks_for_a_retake(
    endpoint,
    appointment,
    patient,
    private_storage,
    make_upload,
    enqueued,
    tmp_path,
    settings,
    deliveries_sent,
    django_capture_on_commit_callbacks,
):
    import ml.testing
    from registry.versions import register_checkpoints
    from triage.services import accept_photo

    settings.MODEL_DIR = tmp_path
    ml.testing.make_random_checkpoint(
        tmp_path / "tiny.pt", arch="efficientnet_lite0", input_size=64, threshold=0.5, version="tiny-1"
    )
    register_checkpoints()

    # A uniform grey photo fails the worker's quality check (nothing in it to see).
    photo = accept_photo(
        case=appointment.case, uploaded_by=patient, uploaded_file=make_upload(color=(128, 128, 128)), body_site="hands"
    )
    with django_capture_on_commit_callbacks(execute=True):
        analyse_photos([photo.pk])
    photo.refresh_from_db()
    assert photo.status == "rejected"
    delivery = WebhookDelivery.objects.get()
    assert delivery.event_type == "photo.retake_needed"
    assert delivery.payload["data"]["photo"] == {
        "id": photo.pk,
        "status": "rejected",
        "reason": photo.status_reason,
        "detail": photo.patient_message,
    }
    assert photo.status_reason == "blank" and "blank" in photo.patient_message


def test_a_patients_move_and_cancel_reach_the_booking_system(
    endpoint, appointment, make_slot, deliveries_sent, django_capture_on_commit_callbacks
):
    first_time, later = appointment.slot.starts_at, make_slot(72)
    with django_capture_on_commit_callbacks(execute=True):
        reschedule_appointment(appointment=appointment, slot=later, actor=appointment.patient)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_appointment(appointment=appointment, actor=appointment.patient)
    with django_capture_on_commit_callbacks(execute=True):
        cancel_appointment(appointment=appointment, actor=appointment.patient)  # a retry: no second event

    moved, cancelled = WebhookDelivery.objects.order_by("created_at", "id")
    assert moved.event_type == "appointment.rescheduled" and cancelled.event_type == "appointment.cancelled"
    assert moved.payload["data"]["appointment"]["starts_at"] == later.starts_at.isoformat()
    assert moved.payload["data"]["previous_starts_at"] == first_time.isoformat()
    assert cancelled.payload["data"]["appointment"] == {
        "reference": appointment.reference,
        "external_id": None,
        "status": "cancelled",
        "starts_at": later.starts_at.isoformat(),
    }
    assert deliveries_sent == [moved.pk, cancelled.pk]


def test_endpoints_get_only_their_clinics_and_chosen_events(
    clinic, other_clinic, receiver, prediction, clinician, deliveries_sent, django_capture_on_commit_callbacks
):
    WebhookEndpoint.objects.create(clinic=other_clinic, url=receiver.url)
    WebhookEndpoint.objects.create(clinic=clinic, url=receiver.url, events=["case.flagged"])
    WebhookEndpoint.objects.create(clinic=clinic, url=receiver.url, is_active=False)
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    assert not WebhookDelivery.objects.exists()


def test_the_payload_names_the_booking_systems_appointment_id(
    endpoint, prediction, clinician, api_key, deliveries_sent, django_capture_on_commit_callbacks
):
    appointment = prediction.photo.case.appointment
    ExternalAppointment.objects.create(
        clinic=appointment.slot.clinic, external_id="EXT-7", appointment=appointment, created_by=api_key[0]
    )
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    assert WebhookDelivery.objects.get().payload["data"]["appointment"]["external_id"] == "EXT-7"


def test_admin_redeliver_sends_the_same_event_again(
    endpoint, receiver, prediction, clinician, admin_user, client, deliveries_sent, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    delivery = WebhookDelivery.objects.get()
    deliver_webhook_task.apply(args=[delivery.pk])
    client.force_login(admin_user)
    changelist = reverse("admin:integrations_webhookdelivery_changelist")
    assert client.get(changelist).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(changelist, {"action": "redeliver_selected", "_selected_action": [delivery.pk]})
    assert response.status_code == 302
    assert deliveries_sent == [delivery.pk, delivery.pk]
    deliver_webhook_task.apply(args=[delivery.pk])
    assert len(receiver.requests) == 2
    assert receiver.requests[0]["json"]["id"] == receiver.requests[1]["json"]["id"]
    delivery.refresh_from_db()
    assert delivery.attempts == 2 and delivery.status == "delivered"


def test_admin_makes_a_key_shows_it_once_and_revokes_it(client, admin_user, clinic):
    from portal.integrations.models import ApiKey

    client.force_login(admin_user)
    response = client.post(
        reverse("admin:integrations_apikey_add"), {"clinic": clinic.pk, "name": "Front desk"}, follow=True
    )
    message = next(str(m) for m in response.context["messages"] if "API key" in str(m))
    key = ApiKey.objects.get()
    full_key = message.split(": ", 1)[1].split(" ")[0]
    assert full_key.startswith(key.prefix + ".") and key.matches(full_key.split(".", 1)[1])
    page = client.get(reverse("admin:integrations_apikey_change", args=[key.pk])).content.decode()
    assert full_key.split(".", 1)[1] not in page  # never shown again
    client.post(reverse("admin:integrations_apikey_changelist"), {"action": "revoke", "_selected_action": [key.pk]})
    key.refresh_from_db()
    assert key.is_revoked


def test_an_endpoint_with_an_unknown_event_is_refused(clinic):
    from django.core.exceptions import ValidationError

    endpoint = WebhookEndpoint(clinic=clinic, url="https://example.org/hook", events=["case.flagged", "case.exploded"])
    with pytest.raises(ValidationError, match="case.exploded"):
        endpoint.full_clean()


def test_deliveries_never_sent_are_queued_again(
    endpoint, prediction, clinician, deliveries_sent, settings, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from django.utils import timezone

    from portal.integrations.tasks import requeue_unsent_deliveries

    with django_capture_on_commit_callbacks(execute=True):
        record_decision(case=prediction.photo.case, clinician=clinician, outcome="not_suspected", action="standard")
    delivery = WebhookDelivery.objects.get()
    deliveries_sent.clear()  # as if the broker had been down
    assert requeue_unsent_deliveries() == 0  # too recent: its task may still be on the way
    WebhookDelivery.objects.update(
        created_at=timezone.now() - timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS + 1)
    )
    assert requeue_unsent_deliveries() == 1 and deliveries_sent == [delivery.pk]
    deliver_webhook_task.apply(args=[delivery.pk])
    assert requeue_unsent_deliveries() == 0  # attempted now: its own retries take over
