"""Triage's endpoints under /api/v1/ (included by portal.api_urls)."""

from django.urls import path

from triage import api

urlpatterns = [
    path("staff/cases/", api.StaffCaseQueueView.as_view(), name="api-staff-queue"),
    path("staff/cases/<int:case_id>/", api.StaffCaseView.as_view(), name="api-staff-case"),
    path("staff/cases/<int:case_id>/decisions/", api.StaffDecisionView.as_view(), name="api-staff-decide"),
    path("staff/cases/<int:case_id>/lab-result/", api.StaffGroundTruthView.as_view(), name="api-staff-lab-result"),
]
