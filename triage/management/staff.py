"""Shared by the commands that record who asked for them (`--by USER`)."""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError


def staff_user(username):
    """The staff user named by `--by`, None without one; a CommandError for an unknown name."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username, is_staff=True).first()
    if user is None:
        raise CommandError(f"No staff user {username!r}.")
    return user
