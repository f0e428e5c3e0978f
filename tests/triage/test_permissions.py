import pytest
from django.urls import reverse

from core.models import AuditEvent

pytestmark = pytest.mark.django_db


def patient_urls(appointment):
    reference = appointment.reference
    return [
        reverse("appointment", args=[reference]),
        reverse("appointment-photo-status", args=[reference]),
    ]


def test_patient_cannot_reach_another_patients_appointment_or_photos(client, other_patient, prediction):
    appointment = prediction.photo.case.appointment
    client.force_login(other_patient)

    for url in [
        *patient_urls(appointment),
        reverse("photo-image", args=[prediction.photo_id]),
        reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]),
        reverse("photo-image", args=[999_999]),
    ]:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("appointment-cancel", args=[appointment.reference])).status_code == 404


def test_patient_sees_own_photo_but_not_the_heatmap(client, patient, prediction):
    client.force_login(patient)

    image = client.get(reverse("photo-image", args=[prediction.photo_id]))
    heatmap = client.get(reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]))

    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert image["Cache-Control"] == "private, no-store"
    assert image["X-Content-Type-Options"] == "nosniff"
    assert heatmap.status_code == 404


def test_patient_page_shows_no_score(client, patient, prediction):
    client.force_login(patient)

    page = client.get(reverse("appointment", args=[prediction.photo.case.appointment.reference])).content.decode()

    assert "Analysed" in page
    # The score (0.83) in any form; a bare "83" could be part of a reference or a time.
    assert "83%" not in page and "0.83" not in page and "83 %" not in page
    assert "heatmap" not in page.lower()


def test_anonymous_is_sent_to_login(client, prediction):
    for url in [
        reverse("appointment", args=[prediction.photo.case.appointment.reference]),
        reverse("photo-image", args=[prediction.photo_id]),
        reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]),
        reverse("staff-queue"),
        reverse("staff-case", args=[prediction.photo.case_id]),
    ]:
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


def test_anonymous_status_requests_are_refused_without_data(client, prediction):
    response = client.get(reverse("appointment-photo-status", args=[prediction.photo.case.appointment.reference]))
    assert response.status_code == 403
    assert "photos" not in response.json()


def test_patients_cannot_reach_the_dashboard(client, patient, prediction):
    client.force_login(patient)

    assert client.get(reverse("staff-queue")).status_code == 403
    assert client.get(reverse("staff-case", args=[prediction.photo.case_id])).status_code == 403


def test_staff_outside_the_clinicians_group_cannot_reach_the_dashboard(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("receptionist", is_staff=True))

    assert client.get(reverse("staff-queue")).status_code == 403


def test_clinician_reaches_dashboard_photo_and_heatmap(client, clinician, prediction):
    client.force_login(clinician)

    assert client.get(reverse("staff-queue")).status_code == 200
    assert client.get(reverse("staff-case", args=[prediction.photo.case_id])).status_code == 200
    assert client.get(reverse("photo-image", args=[prediction.photo_id])).status_code == 200
    heatmap = client.get(reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]))
    assert heatmap.status_code == 200 and heatmap["Content-Type"] == "image/jpeg"


def test_every_photo_access_attempt_is_audited(client, patient, other_patient, clinician, prediction):
    url = reverse("photo-image", args=[prediction.photo_id])
    client.get(url)  # anonymous
    for user in (other_patient, patient, clinician):
        client.force_login(user)
        client.get(url)

    events = AuditEvent.objects.filter(action="view_photo", object_id=str(prediction.photo_id)).order_by("id")
    assert [(event.actor, event.allowed) for event in events] == [
        (None, False),
        (other_patient, False),
        (patient, True),
        (clinician, True),
    ]
    assert events[0].ip_address == "127.0.0.1"


def test_heatmap_access_is_audited(client, patient, prediction):
    client.force_login(patient)
    client.get(reverse("prediction-heatmap", args=[prediction.photo_id, prediction.pk]))

    event = AuditEvent.objects.get(action="view_heatmap")
    assert (event.actor, event.allowed, event.object_id) == (patient, False, str(prediction.pk))
