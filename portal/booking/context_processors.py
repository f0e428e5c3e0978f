from django.conf import settings


def languages(request):
    """The switcher lists each language in its own name ("English", "Español"), never translated."""
    return {"LANGUAGE_CHOICES": settings.LANGUAGES}
