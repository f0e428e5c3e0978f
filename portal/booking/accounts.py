"""Patient accounts: sign-up with email verification, and sign-in links for patients without a password.

Nothing here tells the caller whether an address is registered: every path sends one email to the
address given and the page says the same thing whatever happened.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes, force_str
from django.utils.http import urlsafe_base64_decode, urlsafe_base64_encode
from django.utils.translation import gettext_lazy as _

from portal.booking import emails, signin

User = get_user_model()


def normalise_email(email):
    return email.strip().lower()


def user_for_email(email):
    return User.objects.filter(email__iexact=normalise_email(email)).order_by("pk").first()


def register_patient(*, email, password, language) -> None:
    """Create an inactive account and email a verification link; a known address gets a notice instead."""
    email = normalise_email(email)
    existing = user_for_email(email)
    if existing is not None and existing.is_active:
        emails.send_account_email(
            to=email,
            subject=_("Someone tried to create an account with your email address"),
            template="registration/email/already_registered.txt",
            language=language,
            context={
                "login_url": emails.absolute_url(reverse("login")),
                "reset_url": emails.absolute_url(reverse("password_reset")),
            },
        )
        return
    user = existing or User(username=email, email=email, is_active=False)
    user.set_password(password)
    user.save()
    emails.send_account_email(
        to=email,
        subject=_("Please confirm your email address"),
        template="registration/email/verify.txt",
        language=language,
        context={"verify_url": emails.absolute_url(verification_path(user))},
    )


def verification_path(user):
    return reverse(
        "verify-email", args=[urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)]
    )


def verify_email(*, uidb64, token):
    """Activate the account the link was made for; None when the link is not valid."""
    try:
        user = User.objects.get(pk=force_str(urlsafe_base64_decode(uidb64)))
    except (User.DoesNotExist, ValueError, TypeError, OverflowError):
        return None
    if not default_token_generator.check_token(user, token):
        return None
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
    return user


def send_sign_in_link(*, email, language, next_url="") -> None:
    """Email a one-time sign-in link; an unknown address gets an account without a password."""
    email = normalise_email(email)
    user = user_for_email(email)
    if user is None:
        user = User(username=email, email=email, is_active=False)  # active once the link is used
        user.set_unusable_password()
        user.save()
    elif user.is_staff:
        return  # staff sign in with a password (and django-axes); no link, and the page says the same
    emails.send_account_email(
        to=email,
        subject=_("Your sign-in link"),
        template="registration/email/sign_in_link.txt",
        language=language,
        context={"sign_in_url": emails.absolute_url(signin.sign_in_link_path(user=user, next_url=next_url))},
    )
