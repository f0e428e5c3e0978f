from django.apps import AppConfig


class ModelOpsConfig(AppConfig):
    name = "modelops"
    verbose_name = "Model operations"

    def ready(self):
        from modelops import receivers  # noqa: F401  (connects the figure store's refresh to lab results)
