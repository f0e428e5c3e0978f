from django.apps import AppConfig


class ModelOpsConfig(AppConfig):
    name = "modelops"
    verbose_name = "Model operations"
