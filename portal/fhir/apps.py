from django.apps import AppConfig


class FhirConfig(AppConfig):
    name = "portal.fhir"
    label = "fhir"
    verbose_name = "FHIR R4 interface"

    def ready(self):
        from portal.fhir import receivers  # noqa: F401  (FHIR webhook deliveries for endpoints that chose FHIR)
