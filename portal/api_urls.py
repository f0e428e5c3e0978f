"""Everything under /api/v1/: the integration API (API keys), the patient's and staff APIs (browser
session), the OpenAPI schema and its offline docs pages."""

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView

from portal.booking import api as booking_api
from portal.integrations import api as integration_api

integration_urls = [
    path("slots/", integration_api.SlotListView.as_view(), name="api-slots"),
    path("patients/", integration_api.PatientRegisterView.as_view(), name="api-patients"),
    path("patients/<str:external_id>/", integration_api.PatientView.as_view(), name="api-patient"),
    path("appointments/", integration_api.AppointmentListView.as_view(), name="api-appointments"),
    path("appointments/<str:external_id>/", integration_api.AppointmentView.as_view(), name="api-appointment"),
    path(
        "appointments/<str:external_id>/photos/",
        integration_api.AppointmentPhotosView.as_view(),
        name="api-appointment-photos",
    ),
    path(
        "appointments/<str:external_id>/cancel/",
        integration_api.AppointmentCancelView.as_view(),
        name="api-appointment-cancel",
    ),
    path(
        "appointments/<str:external_id>/reschedule/",
        integration_api.AppointmentRescheduleView.as_view(),
        name="api-appointment-reschedule",
    ),
    path(
        "appointments/<str:external_id>/case/",
        integration_api.AppointmentCaseView.as_view(),
        name="api-appointment-case",
    ),
]

patient_urls = [
    path("appointments/", booking_api.MyAppointmentListView.as_view(), name="api-my-appointments"),
    path("appointments/<str:reference>/", booking_api.MyAppointmentView.as_view(), name="api-my-appointment"),
    path(
        "appointments/<str:reference>/cancel/",
        booking_api.MyAppointmentCancelView.as_view(),
        name="api-my-appointment-cancel",
    ),
    path(
        "appointments/<str:reference>/slots/",
        booking_api.MyAppointmentSlotsView.as_view(),
        name="api-my-appointment-slots",
    ),
    path(
        "appointments/<str:reference>/reschedule/",
        booking_api.MyAppointmentRescheduleView.as_view(),
        name="api-my-appointment-reschedule",
    ),
    path(
        "appointments/<str:reference>/photos/",
        booking_api.MyAppointmentPhotosView.as_view(),
        name="api-my-appointment-photos",
    ),
]

urlpatterns = [
    path("integration/", include(integration_urls)),
    path("me/", include(patient_urls)),
    path("", include("triage.api_urls")),
    path("", include("modelops.api_urls")),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
        name="api-docs",
    ),
    # Redoc's bundle injects its own <style> elements and runs its search in a blob: worker; the page
    # shows only the public schema, so these two are relaxed for it alone.
    path(
        "redoc/",
        csp_update({"style-src": [UNSAFE_INLINE], "worker-src": ["blob:"]})(
            SpectacularRedocView.as_view(url_name="api-schema", template_name="api/redoc.html")
        ),
        name="api-redoc",
    ),
]
