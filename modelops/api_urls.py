"""Model operations' endpoints under /api/v1/ (included by portal.api_urls)."""

from django.urls import path

from modelops import api

urlpatterns = [
    path("admin/model-versions/", api.ModelVersionListView.as_view(), name="api-model-versions"),
    path(
        "admin/model-versions/<int:model_version_id>/promote/",
        api.ModelVersionPromoteView.as_view(),
        name="api-model-version-promote",
    ),
]
