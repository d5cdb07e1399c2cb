from django.urls import path

from webui.training import export_views, results, views

app_name = "training"

# Mounted under projects/<int:project_id>/; versions are addressed by their number in the project.
urlpatterns = [
    path("train/", views.train, name="train"),
    path("train/runs/<int:run_id>/", views.run_status, name="run_status"),
    path("train/runs/<int:run_id>/cancel/", views.cancel_run, name="cancel"),
    path("versions/", views.versions, name="versions"),
    path("versions/compare/", results.compare, name="compare"),
    path("versions/rollback/", views.rollback_view, name="rollback"),
    path("versions/<int:number>/", results.version_detail, name="version"),
    path("versions/<int:number>/cell/", results.confusion_cell, name="cell"),
    path("versions/<int:number>/exports/", export_views.exports, name="exports"),
    path("versions/<int:number>/promote/", views.promote, name="promote"),
    path("versions/<int:number>/threshold/", views.threshold, name="threshold"),
    path("versions/<int:number>/delete/", views.delete_version, name="delete"),
    path("images/<int:image_id>/label/", views.relabel, name="relabel"),
    path("images/<int:image_id>/delete/", views.delete_image, name="delete-image"),
]
