"""/fhir/: the FHIR R4 interface (portal.fhir.api)."""

from django.urls import path, re_path

from portal.fhir import api

urlpatterns = [
    path("metadata", api.MetadataView.as_view(), name="fhir-metadata"),
    re_path(r"^(?P<resource_type>[A-Z][A-Za-z]{0,63})$", api.TypeView.as_view(), name="fhir-type"),
    re_path(
        r"^(?P<resource_type>[A-Z][A-Za-z]{0,63})/(?P<resource_id>[A-Za-z0-9\-.]{1,64})$",
        api.InstanceView.as_view(),
        name="fhir-instance",
    ),
    re_path(r"^.*$", api.UnknownPathView.as_view()),
]
