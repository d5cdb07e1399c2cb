from django.apps import AppConfig
from django.db.models.signals import post_delete


def _forget_loaded_model(sender, instance, **kwargs):
    # However a version goes (the site, the API, the admin, a deleted project's cascade), the loaded
    # model of it goes too: the apps below serving never need to know that a predictor cache exists.
    from webui.serving.services import evict

    evict(instance.pk)


class ServingConfig(AppConfig):
    name = "webui.serving"
    label = "serving"
    verbose_name = "Serving and share links"

    def ready(self):
        post_delete.connect(
            _forget_loaded_model, sender="training.ModelVersion", dispatch_uid="serving-evict-deleted-version"
        )
