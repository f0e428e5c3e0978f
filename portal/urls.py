from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api_urls")),
    path("fhir/", include("portal.fhir.urls")),  # the FHIR R4 interface for clinic systems
    path("i18n/", include("django.conf.urls.i18n")),  # set_language: the language switcher posts here
    path("", include("portal.booking.urls")),  # before auth's URLs: its sign-in and reset views win
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("triage.urls")),
    path("", include("modelops.urls")),
]

handler403 = "portal.errors.permission_denied"
handler404 = "portal.errors.page_not_found"
handler500 = "portal.errors.server_error"
