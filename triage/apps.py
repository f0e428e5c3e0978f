from django.apps import AppConfig


class TriageConfig(AppConfig):
    name = "triage"
    verbose_name = "Triage"

    def ready(self):
        from triage import signals  # noqa: F401  (connects the audit receivers)
