"""One-time sign-in links: a random token in the email, only its hash in the database."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from portal.booking.models import SignInLink


def _hash(token):
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in_link_path(*, user, next_url="") -> str:
    """Make a link for `user` that signs them in once, within SIGN_IN_LINK_HOURS."""
    token = secrets.token_urlsafe(32)
    SignInLink.objects.create(
        user=user,
        token_hash=_hash(token),
        next_url=next_url,
        expires_at=timezone.now() + timedelta(hours=settings.SIGN_IN_LINK_HOURS),
    )
    return reverse("sign-in-link", args=[token])


def usable_link(token):
    """The unused, unexpired link for this token, or None (without using it up). Never for staff:
    accounts that see other people's photos sign in with a password."""
    return (
        SignInLink.objects.filter(
            token_hash=_hash(token), used_at__isnull=True, expires_at__gt=timezone.now(), user__is_staff=False
        )
        .select_related("user")
        .first()
    )


def redeem(token):
    """Use the link up and return it, or None when it is unknown, used or expired. Safe under races."""
    with transaction.atomic():
        used = SignInLink.objects.filter(
            token_hash=_hash(token), used_at__isnull=True, expires_at__gt=timezone.now(), user__is_staff=False
        ).update(used_at=timezone.now())
        if not used:
            return None
        link = SignInLink.objects.select_related("user").get(token_hash=_hash(token))
        if not link.user.is_active:  # the email reached its owner: that verifies it
            link.user.is_active = True
            link.user.save(update_fields=["is_active"])
    if not url_has_allowed_host_and_scheme(link.next_url, allowed_hosts=None):
        link.next_url = ""
    return link


def delete_spent_links() -> int:
    """Delete the links that can no longer sign anyone in (used or expired); returns how many."""
    deleted, _ = SignInLink.objects.filter(Q(used_at__isnull=False) | Q(expires_at__lte=timezone.now())).delete()
    return deleted
