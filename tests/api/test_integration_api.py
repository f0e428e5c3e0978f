"""The integration API: a clinic's booking system with an API key books, uploads and polls."""

import pytest
from django.urls import reverse

from core.models import AuditEvent
from portal.integrations.models import ApiKey, ExternalAppointment, IdempotencyRecord
from portal.integrations.services import revoke_api_key
from triage.api import UploadRateThrottle
from triage.models import Photo
from triage.services import record_decision

pytestmark = pytest.mark.django_db


def register(client, external_id="P-1", **extra):
    return client.post(reverse("api-patients"), {"external_id": external_id, **extra}, format="json")


def book(client, slot, external_id="A-1", patient_external_id="P-1", headers=None, **extra):
    body = {
        "external_id": external_id,
        "patient_external_id": patient_external_id,
        "slot": slot.pk,
        "consent_care": True,
        **extra,
    }
    return client.post(reverse("api-appointments"), body, format="json", headers=headers or {})


@pytest.fixture
def booked(key_client, slot):
    """Patient P-1 registered and appointment A-1 booked through the API."""
    assert register(key_client).status_code == 201
    response = book(key_client, slot)
    assert response.status_code == 201, response.content
    return response.json()


def upload(client, make_upload, external_id="A-1", headers=None, **fields):
    data = {"photo": make_upload(), "body_site": "hands", **fields}
    return client.post(
        reverse("api-appointment-photos", args=[external_id]), data, format="multipart", headers=headers or {}
    )


# --- keys ---------------------------------------------------------------------------------------


def test_a_key_is_stored_only_as_a_prefix_and_a_hash(api_key):
    key, full_key = api_key
    prefix, secret = full_key.split(".")
    stored = ApiKey.objects.get(pk=key.pk)
    assert stored.prefix == prefix
    assert secret not in stored.hashed_secret and len(stored.hashed_secret) == 64
    assert not stored.user.has_usable_password() and not stored.user.is_staff


def test_no_key_is_401_with_the_scheme_named(db):
    from rest_framework.test import APIClient

    response = APIClient().get(reverse("api-slots"))
    assert response.status_code in (401, 403)
    response = APIClient(headers={"Authorization": "Api-Key nope"}).get(reverse("api-slots"))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


def test_wrong_and_revoked_keys_are_refused_and_audited(api_key, key_client, admin_user):
    key, full_key = api_key
    prefix = full_key.split(".")[0]
    from rest_framework.test import APIClient

    wrong = APIClient(headers={"Authorization": f"Api-Key {prefix}.not-the-secret"})
    assert wrong.get(reverse("api-slots")).status_code == 401
    assert AuditEvent.objects.filter(action="api_key_failed", allowed=False).count() == 1

    assert key_client.get(reverse("api-slots")).status_code == 200
    key.refresh_from_db()
    assert key.last_used_at is not None

    revoke_api_key(api_key=key, revoked_by=admin_user)
    assert key_client.get(reverse("api-slots")).status_code == 401


def test_repeated_bad_keys_from_one_address_are_throttled(api_key, key_client, settings):
    settings.API_KEY_FAILURE_LIMIT = 3
    from rest_framework.test import APIClient

    guesser = APIClient(headers={"Authorization": "Api-Key abcd1234.guess"})
    assert [guesser.get(reverse("api-slots")).status_code for _ in range(4)] == [401, 401, 401, 429]
    # Same address: even the right key waits now, so guessing gains nothing.
    assert key_client.get(reverse("api-slots")).status_code == 429


# --- patients, slots and bookings ------------------------------------------------------------------


def test_register_patient_then_look_it_up(key_client):
    created = register(key_client, email="p1@example.org")
    assert created.status_code == 201
    assert created.json()["external_id"] == "P-1"
    again = register(key_client)
    assert again.status_code == 200  # the same patient, not a second one
    looked_up = key_client.get(reverse("api-patient", args=["P-1"]))
    assert looked_up.json()["email"] == "p1@example.org"
    assert key_client.get(reverse("api-patient", args=["P-2"])).status_code == 404


def test_a_bad_external_id_is_a_clear_400(key_client):
    response = register(key_client, external_id="no spaces/please")
    assert response.status_code == 400
    assert "external_id" in response.json()


def test_slots_are_the_clinics_free_ones_paginated(key_client, make_slot, other_clinic, slot):
    second = make_slot(48)
    from portal.booking.models import Slot

    Slot.objects.create(clinic=other_clinic, service=second.service, starts_at=second.starts_at)
    register(key_client)
    book(key_client, slot)
    body = key_client.get(reverse("api-slots")).json()
    assert body["count"] == 1 and [row["id"] for row in body["results"]] == [second.pk]


def test_book_creates_appointment_and_case(booked, slot):
    assert booked["external_id"] == "A-1" and booked["patient_external_id"] == "P-1"
    assert booked["slot"]["id"] == slot.pk
    assert booked["case"] == {
        "id": booked["case"]["id"],
        "is_open": True,
        "flagged": False,
        "outcome": "pending",
        "decision": None,
    }
    appointment = ExternalAppointment.objects.get(external_id="A-1").appointment
    assert appointment.case.pk == booked["case"]["id"]


def test_booking_refusals_are_clear_and_make_nothing(key_client, slot, make_slot):
    register(key_client)
    no_consent = book(key_client, slot, consent_care=False)
    assert no_consent.status_code == 400 and "consent" in str(no_consent.json()).lower()
    assert book(key_client, slot).status_code == 201
    taken = book(key_client, slot, external_id="A-2")
    assert taken.status_code == 400 and "taken" in str(taken.json())
    duplicate = book(key_client, make_slot(72), external_id="A-1")
    assert duplicate.status_code == 400 and "already exists" in str(duplicate.json())
    unknown = book(key_client, make_slot(96), external_id="A-3", patient_external_id="nobody")
    assert unknown.status_code == 400 and "patient_external_id" in unknown.json()
    assert ExternalAppointment.objects.count() == 1


def test_another_clinics_slots_and_appointments_are_out_of_reach(booked, make_api_key, other_clinic, make_slot):
    from rest_framework.test import APIClient

    from portal.booking.models import Slot

    _, other_key = make_api_key(other_clinic, name="Other system")
    other = APIClient(headers={"Authorization": f"Api-Key {other_key}"})
    assert other.get(reverse("api-appointment", args=["A-1"])).status_code == 404
    assert other.get(reverse("api-appointment-photos", args=["A-1"])).status_code == 404
    assert other.get(reverse("api-patient", args=["P-1"])).status_code == 404
    assert other.get(reverse("api-appointments")).json()["count"] == 0
    register(other, external_id="Q-1")
    ours = make_slot(50)  # a slot at the first clinic
    response = book(other, ours, external_id="B-1", patient_external_id="Q-1")
    assert response.status_code == 400 and "slot" in response.json()
    assert Slot.objects.get(pk=ours.pk).appointments.count() == 0


def test_a_retried_booking_with_the_same_idempotency_key_books_once(key_client, slot, make_slot):
    register(key_client)
    first = book(key_client, slot, headers={"Idempotency-Key": "k-1"})
    retry = book(key_client, slot, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry["Idempotent-Replayed"] == "true"
    assert ExternalAppointment.objects.count() == 1
    different = book(key_client, make_slot(30), external_id="A-9", headers={"Idempotency-Key": "k-1"})
    assert different.status_code == 422
    assert ExternalAppointment.objects.count() == 1


def test_a_failed_request_does_not_use_up_its_idempotency_key(key_client, slot):
    register(key_client)
    assert book(key_client, slot, consent_care=False, headers={"Idempotency-Key": "k-2"}).status_code == 400
    assert not IdempotencyRecord.objects.exists()
    assert book(key_client, slot, consent_care=True, headers={"Idempotency-Key": "k-2"}).status_code == 201


# --- photos -----------------------------------------------------------------------------------------


def test_upload_then_poll_photo_status(
    booked, key_client, make_upload, private_storage, enqueued, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = upload(key_client, make_upload, roi_x0=10, roi_y0=10, roi_x1=110, roi_y1=90)
    assert response.status_code == 201, response.content
    photo = Photo.objects.get()
    assert response.json()["id"] == photo.pk and response.json()["status"] == "received"
    assert photo.roi == (10, 10, 110, 90)
    assert photo.uploaded_by.api_key.name == "Booking system"  # the integration is named as the uploader
    assert enqueued == [(photo.pk, None)]
    listing = key_client.get(reverse("api-appointment-photos", args=["A-1"])).json()
    assert listing["count"] == 1 and listing["results"][0]["status"] == "received"


def test_a_retried_upload_with_the_same_idempotency_key_makes_one_photo(
    booked, key_client, make_upload, private_storage, enqueued, stored_files
):
    first = upload(key_client, make_upload, headers={"Idempotency-Key": "upload-1"})
    retry = upload(key_client, make_upload, headers={"Idempotency-Key": "upload-1"})
    assert first.status_code == retry.status_code == 201
    assert retry.json()["id"] == first.json()["id"]
    assert Photo.objects.count() == 1 and len(stored_files()) == 1
    other_photo = upload(key_client, lambda: make_upload(color=(10, 20, 30)), headers={"Idempotency-Key": "upload-1"})
    assert other_photo.status_code == 422
    assert Photo.objects.count() == 1


def test_bad_uploads_get_a_clear_400_and_store_nothing(
    booked, key_client, make_upload, private_storage, stored_files, enqueued
):
    not_image = key_client.post(
        reverse("api-appointment-photos", args=["A-1"]),
        {"photo": make_upload(content=b"not an image at all"), "body_site": "hands"},
        format="multipart",
    )
    assert not_image.status_code == 400 and "photo" in not_image.json()
    half_box = upload(key_client, make_upload, roi_x0=1, roi_y0=1)
    assert half_box.status_code == 400 and "Give all of roi_x0, roi_y0, roi_x1, roi_y1" in str(half_box.json())
    no_site = upload(key_client, make_upload, body_site="elbow")
    assert no_site.status_code == 400 and "body_site" in no_site.json()
    assert not Photo.objects.exists() and stored_files() == [] and enqueued == []


def test_a_tap_becomes_the_box_the_patient_page_would_make(booked, key_client, make_upload, private_storage, enqueued):
    """A 64 px square (the minimum side; 40 % of 120 px is less) centred on the tap in the 200×120 photo."""
    response = upload(key_client, make_upload, tap_x=100, tap_y=60)
    assert response.status_code == 201, response.content
    photo = Photo.objects.get()
    assert (photo.roi, photo.roi_source) == ((68, 28, 132, 92), "patient_tap")


@pytest.mark.parametrize(
    "marks, message",
    [
        ({"tap_x": 100}, "Give all of tap_x, tap_y or none of them."),
        ({"tap_x": 200, "tap_y": 60}, "The place tapped lies outside the photo."),
        ({"tap_x": 10, "tap_y": 10, "roi_x0": 0, "roi_y0": 0, "roi_x1": 100, "roi_y1": 100}, "not both"),
        ({"roi_x0": 0, "roi_y0": 0, "roi_x1": 300, "roi_y1": 100}, "lies outside the photo"),
        ({"tap_x": -1, "tap_y": 5}, "greater than or equal to 0"),
    ],
)
def test_a_mark_that_cannot_be_used_is_a_clear_400_and_stores_nothing(
    booked, key_client, make_upload, private_storage, stored_files, enqueued, marks, message
):
    response = upload(key_client, make_upload, **marks)
    assert response.status_code == 400 and message in str(response.json()), response.json()
    assert not Photo.objects.exists() and stored_files() == [] and enqueued == []


def test_uploads_are_rate_limited(booked, key_client, make_upload, private_storage, enqueued, monkeypatch):
    monkeypatch.setattr(UploadRateThrottle, "THROTTLE_RATES", {"uploads": "2/min"})
    codes = [upload(key_client, make_upload).status_code for _ in range(3)]
    assert codes == [201, 201, 429]
    assert key_client.get(reverse("api-appointment-photos", args=["A-1"])).status_code == 200  # reads are not counted


def test_the_case_shows_flag_and_decision_but_no_score(
    booked, key_client, make_upload, private_storage, enqueued, record_result, clinician
):
    upload(key_client, make_upload)
    photo = Photo.objects.get()
    record_result(photo, 0.83)
    case_body = key_client.get(reverse("api-appointment-case", args=["A-1"])).json()
    assert case_body["flagged"] is True and case_body["decision"] is None
    record_decision(
        case=photo.case, clinician=clinician, outcome="suspected", action="isolation_room", note="private note"
    )
    body = key_client.get(reverse("api-appointment", args=["A-1"])).json()
    assert body["case"]["outcome"] == "suspected"
    assert body["case"]["decision"]["action"] == "isolation_room"
    text = str(body) + str(key_client.get(reverse("api-appointment-photos", args=["A-1"])).json())
    assert "0.83" not in text and "probability" not in text and "private note" not in text


def test_no_uploads_to_a_cancelled_appointment(
    booked, key_client, make_upload, private_storage, enqueued, stored_files
):
    from portal.booking.services import cancel_appointment

    cancel_appointment(appointment=ExternalAppointment.objects.get().appointment, actor=None)
    response = upload(key_client, make_upload)
    assert response.status_code == 400 and "cancelled" in str(response.json())
    assert not Photo.objects.exists() and stored_files() == []
    assert key_client.get(reverse("api-appointment", args=["A-1"])).json()["status"] == "cancelled"


def test_idempotency_records_expire(booked, key_client, slot, settings):
    from datetime import timedelta

    from django.utils import timezone

    from portal.integrations.tasks import purge_idempotency_records

    key_client.post(reverse("api-patients"), {"external_id": "P-2"}, format="json", headers={"Idempotency-Key": "old"})
    key_client.post(reverse("api-patients"), {"external_id": "P-3"}, format="json", headers={"Idempotency-Key": "new"})
    IdempotencyRecord.objects.filter(key="old").update(
        created_at=timezone.now() - timedelta(hours=settings.IDEMPOTENCY_KEY_TTL_HOURS + 1)
    )
    assert purge_idempotency_records() == 1
    assert list(IdempotencyRecord.objects.values_list("key", flat=True)) == ["new"]


def test_integrations_admin_pages_load(booked, client, admin_user, clinic):
    from portal.integrations.models import WebhookEndpoint

    WebhookEndpoint.objects.create(clinic=clinic, url="https://example.org/hook")
    client.force_login(admin_user)
    for model in ["apikey", "externalpatient", "externalappointment", "webhookendpoint", "webhookdelivery"]:
        page = client.get(reverse(f"admin:integrations_{model}_changelist"))
        assert page.status_code == 200, model
    assert "A-1" in client.get(reverse("admin:integrations_externalappointment_changelist")).content.decode()
    assert client.get(reverse("admin:integrations_externalappointment_add")).status_code == 403


def test_an_idempotent_request_with_a_json_array_is_a_400_not_a_crash(key_client):
    response = key_client.post(
        reverse("api-patients"), ["external_id"], format="json", headers={"Idempotency-Key": "arr"}
    )
    assert response.status_code == 400


def at_once(send, times=2):
    """Call `send()` from `times` threads released together (as retries racing the first request); the
    answers in the order they came. Each thread closes its own database connection."""
    import threading

    from django.db import connection

    barrier = threading.Barrier(times)
    responses = []

    def run():
        try:
            barrier.wait()
            responses.append(send())
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(times)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return responses


@pytest.mark.django_db(transaction=True)
def test_concurrent_retries_with_one_idempotency_key_make_one_photo(
    api_key, slot, make_upload, private_storage, enqueued
):
    """Two copies of an upload arrive at once (a client timed out and retried): the second waits on the
    key's row, then replays the first answer."""
    from rest_framework.test import APIClient

    client = APIClient(headers={"Authorization": f"Api-Key {api_key[1]}"})
    register(client)
    book(client, slot)
    content = make_upload().read()
    responses = at_once(
        lambda: client.post(
            reverse("api-appointment-photos", args=["A-1"]),
            {"photo": make_upload(content=content), "body_site": "hands"},
            format="multipart",
            headers={"Idempotency-Key": "same-upload"},
        )
    )
    assert sorted(response.status_code for response in responses) == [201, 201]
    assert len({response.json()["id"] for response in responses}) == 1
    assert sorted(response.get("Idempotent-Replayed", "") for response in responses) == ["", "true"]
    assert Photo.objects.count() == 1


# --- cancel and move ----------------------------------------------------------------------------------


def cancel(client, external_id="A-1"):
    return client.post(reverse("api-appointment-cancel", args=[external_id]))


def test_cancel_frees_the_slot_closes_the_case_and_is_safe_to_retry(
    key_client, slot, mailoutbox, django_capture_on_commit_callbacks
):
    register(key_client, email="p1@example.org")
    book(key_client, slot)
    with django_capture_on_commit_callbacks(execute=True):
        first = cancel(key_client)
    assert first.status_code == 200, first.content
    assert first.json()["status"] == "cancelled" and first.json()["case"]["is_open"] is False
    assert slot.pk in [row["id"] for row in key_client.get(reverse("api-slots")).json()["results"]]
    with django_capture_on_commit_callbacks(execute=True):
        retry = cancel(key_client)
    assert retry.status_code == 200 and retry.json() == first.json()
    assert [message.subject for message in mailoutbox] == [
        f"Your appointment is cancelled ({first.json()['reference']})"
    ]
    assert not ExternalAppointment.objects.get().appointment.case.is_open


def test_cancel_is_refused_after_the_cut_off_and_for_another_clinic(key_client, make_slot, make_api_key, other_clinic):
    from rest_framework.test import APIClient

    register(key_client)
    assert book(key_client, make_slot(1), external_id="SOON").status_code == 201  # starts within the 2 h cut-off
    late = cancel(key_client, "SOON")
    assert late.status_code == 400 and "call the clinic" in str(late.json())
    _, other_key = make_api_key(other_clinic, name="Other system")
    assert cancel(APIClient(headers={"Authorization": f"Api-Key {other_key}"}), "SOON").status_code == 404
    assert ExternalAppointment.objects.get().appointment.status == "booked"


def test_reschedule_moves_to_a_free_slot_of_the_clinic(booked, key_client, slot, make_slot, other_clinic, service):
    from portal.booking.models import Service, Slot

    url = reverse("api-appointment-reschedule", args=["A-1"])
    later = make_slot(72)
    moved = key_client.post(url, {"slot": later.pk}, format="json")
    assert moved.status_code == 200, moved.content
    assert moved.json()["slot"]["id"] == later.pk and moved.json()["case"]["id"] == booked["case"]["id"]
    again = key_client.post(url, {"slot": later.pk}, format="json")
    assert again.status_code == 200 and again.json() == moved.json()
    assert slot.pk in [row["id"] for row in key_client.get(reverse("api-slots")).json()["results"]]

    elsewhere = Slot.objects.create(clinic=other_clinic, service=service, starts_at=later.starts_at)
    other_service = Slot.objects.create(
        clinic=slot.clinic,
        service=Service.objects.create(name="Vaccination"),
        starts_at=later.starts_at,
    )
    refused = {
        "another clinic's slot": key_client.post(url, {"slot": elsewhere.pk}, format="json"),
        "another service": key_client.post(url, {"slot": other_service.pk}, format="json"),
        "no slot": key_client.post(url, {}, format="json"),
    }
    assert {what: response.status_code for what, response in refused.items()} == dict.fromkeys(refused, 400)
    assert "slot" in refused["another clinic's slot"].json() and "same service" in str(
        refused["another service"].json()
    )
    assert ExternalAppointment.objects.get().appointment.slot == later


@pytest.mark.django_db(transaction=True)
def test_two_cancels_at_once_cancel_and_email_once(api_key, slot, mailoutbox, monkeypatch):
    """A booking system retries a cancel that is still running: the appointment row is locked, so the
    second waits, finds it cancelled, and answers the same without a second email."""
    import time

    from rest_framework.test import APIClient

    from portal.booking import services

    close_case = services.close_case

    def slow_close_case(**arguments):  # holds the first cancel's transaction open while the second arrives
        time.sleep(0.5)
        return close_case(**arguments)

    monkeypatch.setattr(services, "close_case", slow_close_case)
    client = APIClient(headers={"Authorization": f"Api-Key {api_key[1]}"})
    register(client, email="p1@example.org")
    book(client, slot)
    mailoutbox.clear()
    responses = at_once(lambda: cancel(client))
    assert [response.status_code for response in responses] == [200, 200]
    assert [response.json()["status"] for response in responses] == ["cancelled", "cancelled"]
    assert len(mailoutbox) == 1


def test_a_photo_for_a_cancelled_appointment_is_refused_and_not_analysed(
    key_client, booked, make_upload, private_storage, enqueued
):
    assert cancel(key_client).status_code == 200

    refused = upload(key_client, make_upload)

    assert refused.status_code in (400, 409) and "cancelled" in str(refused.json())
    assert Photo.objects.count() == 0 and enqueued == []
