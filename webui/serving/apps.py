from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "webui.serving"
    label = "serving"
    verbose_name = "Serving and share links"
