from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/", include("portal.api_urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("", include("portal.booking.urls")),
    path("", include("triage.urls")),
]

handler403 = "portal.errors.permission_denied"
handler404 = "portal.errors.page_not_found"
handler500 = "portal.errors.server_error"
