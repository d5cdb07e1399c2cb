from django.urls import path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.permissions import AllowAny

from webui.api.views import batch, docs, exports, images, predict, projects, training

app_name = "api"

urlpatterns = [
    path("projects/", projects.ProjectList.as_view(), name="project-list"),
    path("projects/<int:project_id>/", projects.ProjectDetail.as_view(), name="project-detail"),
    path("projects/<int:project_id>/labels/", projects.LabelList.as_view(), name="label-list"),
    path("labels/<int:label_id>/", projects.LabelDetail.as_view(), name="label-detail"),
    path("projects/<int:project_id>/images/", images.ImageList.as_view(), name="image-list"),
    path("projects/<int:project_id>/dataset/", images.Dataset.as_view(), name="dataset"),
    path("images/<int:image_id>/", images.ImageDetail.as_view(), name="image-detail"),
    path("projects/<int:project_id>/train/", training.Train.as_view(), name="train"),
    path("projects/<int:project_id>/runs/", training.RunList.as_view(), name="run-list"),
    path("runs/<int:run_id>/", training.RunDetail.as_view(), name="run-detail"),
    path("runs/<int:run_id>/cancel/", training.RunCancel.as_view(), name="run-cancel"),
    path("projects/<int:project_id>/versions/", training.VersionList.as_view(), name="version-list"),
    path("versions/<int:version_id>/", training.VersionDetail.as_view(), name="version-detail"),
    path("versions/<int:version_id>/promote/", training.VersionPromote.as_view(), name="version-promote"),
    path(
        "versions/<int:version_id>/threshold/", training.VersionThreshold.as_view(), name="version-threshold"
    ),
    path("versions/<int:version_id>/download/", training.VersionDownload.as_view(), name="version-download"),
    path("versions/<int:version_id>/exports/", exports.ExportList.as_view(), name="export-list"),
    path(
        "versions/<int:version_id>/exports/<int:export_id>/",
        exports.ExportDetail.as_view(),
        name="export-detail",
    ),
    path(
        "versions/<int:version_id>/exports/<int:export_id>/download/",
        exports.ExportDownload.as_view(),
        name="export-download",
    ),
    path("projects/<int:project_id>/rollback/", training.Rollback.as_view(), name="rollback"),
    path("projects/<int:project_id>/predict/", predict.Predict.as_view(), name="predict"),
    path("projects/<int:project_id>/predictions/", batch.BatchCreate.as_view(), name="batch-create"),
    path("predictions/<int:batch_id>/", batch.BatchDetail.as_view(), name="batch-detail"),
    path("features/", predict.Features.as_view(), name="features"),
    path("recognize/", predict.Recognize.as_view(), name="recognize"),
    path("schema/", SpectacularAPIView.as_view(permission_classes=[AllowAny]), name="schema"),
    path("docs/", docs.docs, name="docs"),
]
