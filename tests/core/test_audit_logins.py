"""Sign-in activity is audited: who, when, from where, and failed attempts with the name tried."""

from django.urls import reverse

from core.models import AuditEvent
from tests.conftest import PASSWORD


def test_login_logout_and_failed_login_are_audited(client, clinician):
    client.post(reverse("login"), {"username": "clinician", "password": "wrong-password"})
    failed = AuditEvent.objects.get(action="login_failed")
    assert failed.actor is None and not failed.allowed
    assert failed.detail == {"username": "clinician"}
    assert failed.ip_address == "127.0.0.1"

    client.post(reverse("login"), {"username": "clinician", "password": PASSWORD})
    client.post(reverse("logout"))
    assert list(AuditEvent.objects.filter(actor=clinician).values_list("action", flat=True)) == ["logout", "login"]


def test_repeated_failed_sign_ins_lock_the_account_even_with_the_right_password(client, clinician, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": "clinician", "password": "guess"})
    response = client.post(reverse("login"), {"username": "clinician", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert AuditEvent.objects.filter(action="login_failed").count() >= settings.AXES_FAILURE_LIMIT
