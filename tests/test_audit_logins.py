"""Sign-in activity is audited: who, when, from where, and failed attempts with the name tried."""
from django.urls import reverse

from tests.conftest import PASSWORD
from triage.models import AuditEvent


def test_login_logout_and_failed_login_are_audited(client, clinician):
    client.post(reverse("login"), {"username": "clinician", "password": "wrong-password"})
    failed = AuditEvent.objects.get(action="login_failed")
    assert failed.actor is None and not failed.allowed
    assert failed.detail == {"username": "clinician"}
    assert failed.ip_address == "127.0.0.1"

    client.post(reverse("login"), {"username": "clinician", "password": PASSWORD})
    client.post(reverse("logout"))
    assert list(AuditEvent.objects.filter(actor=clinician).values_list("action", flat=True)) == ["logout", "login"]
