from django.apps import AppConfig


class TrainingConfig(AppConfig):
    name = "webui.training"
    label = "training"
    verbose_name = "Training and model versions"
