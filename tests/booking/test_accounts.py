"""Patient accounts: sign-up with email verification, password reset, one-time sign-in links, rate
limits, and pages that never say whether an address is registered."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.booking.models import SignInLink
from portal.booking.signin import sign_in_link_path
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "a-long-unusual-passphrase"


def link_in(email):
    return re.search(r"https?://\S+", email.body).group(0)


def path_of(url):
    return re.sub(r"^https?://[^/]+", "", url)


def page_without(response, email):
    """The page as text with the address typed and the per-request CSRF token blanked out."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode()).replace(email, "EMAIL")


def test_signup_sends_a_verification_link_that_activates_and_signs_in(client):
    response = client.post(reverse("signup"), {"email": "New@Example.org", "password": NEW_PASSWORD})

    assert response.status_code == 200 and "Check your email" in response.content.decode()
    user = User.objects.get(email="new@example.org")
    assert not user.is_active and user.username == "new@example.org"
    (email,) = mail.outbox
    assert email.to == ["new@example.org"] and "confirm" in email.subject
    refused = client.post(reverse("login"), {"username": "new@example.org", "password": NEW_PASSWORD})
    assert refused.status_code == 200 and "not confirmed yet" in refused.content.decode()  # not before verifying

    response = client.get(path_of(link_in(email)))

    assert response.status_code == 302 and response["Location"] == reverse("home")
    user.refresh_from_db()
    assert user.is_active
    assert client.get(reverse("home")).context["user"] == user


def test_signup_with_a_registered_address_looks_the_same_and_emails_the_owner(client, patient):
    fresh = client.post(reverse("signup"), {"email": "someone-new@example.org", "password": NEW_PASSWORD})
    known = client.post(reverse("signup"), {"email": patient.email.upper(), "password": NEW_PASSWORD})

    assert page_without(fresh, "someone-new@example.org") == page_without(known, patient.email.upper())
    assert User.objects.filter(email__iexact=patient.email).count() == 1
    patient.refresh_from_db()
    assert patient.check_password(PASSWORD)  # nothing about the existing account changed
    assert "already have one" in mail.outbox[-1].body and mail.outbox[-1].to == [patient.email]


def test_signup_refuses_a_weak_password_with_a_clear_message(client):
    response = client.post(reverse("signup"), {"email": "x@example.org", "password": "password"})

    assert response.status_code == 200 and "too common" in response.content.decode()
    assert not User.objects.filter(email="x@example.org").exists() and not mail.outbox


def test_sign_in_accepts_the_email_address_in_any_case(client, db):
    User.objects.create_user("pat@example.org", "pat@example.org", PASSWORD)

    response = client.post(reverse("login"), {"username": "Pat@Example.org", "password": PASSWORD})

    assert response.status_code == 302


def test_sign_in_page_links_to_reset_and_email_link_in_the_portal_styling(client):
    page = client.get(reverse("login")).content.decode()
    assert reverse("password_reset") in page and reverse("sign-in-link-request") in page and reverse("signup") in page

    reset = client.get(reverse("password_reset")).content.decode()
    assert "css/portal.css" in reset and "Django administration" not in reset


def test_password_reset_says_the_same_for_any_address_and_resets(client, patient):
    unknown = client.post(reverse("password_reset"), {"email": "nobody@example.org"})
    known = client.post(reverse("password_reset"), {"email": patient.email})

    assert unknown.status_code == known.status_code == 302 and unknown["Location"] == known["Location"]
    (email,) = mail.outbox
    assert email.to == [patient.email]
    confirm = client.get(path_of(link_in(email)), follow=True)
    assert "Choose a new password" in confirm.content.decode()
    client.post(confirm.redirect_chain[-1][0], {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    patient.refresh_from_db()
    assert patient.check_password(NEW_PASSWORD)


def test_email_link_for_a_new_address_signs_in_once_after_a_button_press(client):
    response = client.post(reverse("sign-in-link-request"), {"email": "walk-in@example.org"})
    assert "Check your email" in response.content.decode()
    link = path_of(link_in(mail.outbox[-1]))

    assert client.get(link).status_code == 200  # a mail scanner opening the link uses nothing up
    assert client.get(reverse("home")).status_code == 302  # not signed in yet
    response = client.post(link)

    user = User.objects.get(email="walk-in@example.org")
    assert response.status_code == 302 and user.is_active and not user.has_usable_password()
    assert client.get(reverse("home")).context["user"] == user
    client.logout()
    assert client.post(link).status_code == 400  # one time only
    assert client.get(reverse("home")).status_code == 302


def test_email_link_requests_look_the_same_for_known_unknown_and_staff_addresses(client, patient, clinician):
    pages = [
        page_without(client.post(reverse("sign-in-link-request"), {"email": email}), email)
        for email in ("stranger@example.org", patient.email, clinician.email)
    ]
    assert pages[0] == pages[1] == pages[2]
    assert [email.to for email in mail.outbox] == [["stranger@example.org"], [patient.email]]  # staff use passwords


def test_booking_email_link_leads_to_the_appointment_and_expires(client, patient, appointment):
    fresh = sign_in_link_path(user=patient, next_url=reverse("appointment", args=[appointment.reference]))
    assert client.post(fresh)["Location"] == reverse("appointment", args=[appointment.reference])

    client.logout()
    stale = sign_in_link_path(user=patient)
    SignInLink.objects.filter(used_at__isnull=True).update(expires_at=timezone.now() - timedelta(minutes=1))
    assert client.get(stale).status_code == 400 and client.post(stale).status_code == 400


def test_beat_deletes_used_and_expired_sign_in_links_and_keeps_usable_ones(client, patient):
    from portal.booking.tasks import delete_spent_sign_in_links_task

    used, expired, usable = (sign_in_link_path(user=patient) for _ in range(3))
    client.post(used)
    SignInLink.objects.filter(pk=SignInLink.objects.order_by("pk")[1].pk).update(expires_at=timezone.now())
    client.logout()

    assert delete_spent_sign_in_links_task() == 2
    assert SignInLink.objects.count() == 1 and delete_spent_sign_in_links_task() == 0
    assert client.post(usable)["Location"] == reverse("home")
    assert client.post(expired).status_code == 400


def test_a_sign_in_link_never_redirects_off_site(client, patient):
    link = sign_in_link_path(user=patient, next_url="//evil.example/")

    assert client.post(link)["Location"] == reverse("home")


def test_account_forms_are_rate_limited_per_address(client, settings):
    for attempt in range(5):
        assert client.post(reverse("sign-in-link-request"), {"email": f"a{attempt}@example.org"}).status_code == 200

    limited = client.post(reverse("sign-in-link-request"), {"email": "a9@example.org"})

    assert limited.status_code == 429 and "Too many attempts" in limited.content.decode()
    assert len(mail.outbox) == 5


def test_account_forms_are_rate_limited_per_email_from_any_address(client):
    for attempt in range(5):
        client.post(reverse("password_reset"), {"email": "target@example.org"}, REMOTE_ADDR=f"10.0.0.{attempt}")

    limited = client.post(reverse("password_reset"), {"email": "target@example.org"}, REMOTE_ADDR="10.0.0.99")

    assert limited.status_code == 429


def test_sign_in_is_rate_limited_per_address(client, settings, patient):
    for _ in range(30):
        client.post(reverse("login"), {"username": f"guess-{_}", "password": "wrong"})

    limited = client.post(reverse("login"), {"username": patient.username, "password": PASSWORD})

    assert limited.status_code == 429 and "Too many attempts" in limited.content.decode()
