from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "portal.integrations"
    label = "integrations"
    verbose_name = "Integrations (API keys, webhooks)"

    def ready(self):
        from portal.integrations import receivers  # noqa: F401  (turns triage events into webhook deliveries)
