from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "webui.projects"
    label = "projects"
    verbose_name = "Projects and images"
