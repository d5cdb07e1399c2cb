"""Training runs and model versions: train, cancel, promote, roll back, delete, download."""

from __future__ import annotations

from django.db.models import ProtectedError
from django.http import HttpResponse
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from webui.api.errors import BadRequest, Conflict
from webui.api.serializers import (
    RunSerializer,
    ThresholdSerializer,
    TrainedRunSerializer,
    TrainSerializer,
    VersionSerializer,
)
from webui.api.views.base import CONFLICT, READ_ERRORS, WRITE_ERRORS, ApiView, DownloadView
from webui.jobs.models import InvalidTransition
from webui.projects.access import get_in_project_for_user, get_project_for_user
from webui.training import label_thresholds
from webui.training.artifacts import ArtifactBroken, zip_artifact
from webui.training.models import ArtifactInUse, ModelVersion, TrainingRun, rollback
from webui.training.services import TrainingRefused, cancel, start_training
from webui.training.thresholds import BadThreshold, set_threshold

RUNS = TrainingRun.objects.select_related("model_version")
VERSIONS = ModelVersion.objects.select_related("project")


class Train(ApiView):
    @extend_schema(
        request=TrainSerializer,
        responses={202: TrainedRunSerializer, 200: TrainedRunSerializer, **WRITE_ERRORS},
        summary="Queue a training run",
        description=(
            "202 with the queued run; 200 with `reused: true` when an identical run (same data and "
            "parameters) is queued, running or already produced a version."
        ),
    )
    def post(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id, write=True)
        form = TrainSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            run = start_training(project, request.user, dict(form.validated_data))
        except TrainingRefused as exc:
            raise BadRequest(str(exc)) from None
        reused = run.reused
        run = RUNS.get(pk=run.pk)
        run.reused = reused
        code = status.HTTP_200_OK if reused else status.HTTP_202_ACCEPTED
        return Response(TrainedRunSerializer(run).data, status=code)


class RunList(ApiView):
    @extend_schema(
        responses={200: RunSerializer(many=True), **READ_ERRORS}, summary="A project's runs, newest first"
    )
    def get(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id)
        return Response(RunSerializer(RUNS.filter(project=project), many=True).data)


class RunDetail(ApiView):
    @extend_schema(responses={200: RunSerializer, **READ_ERRORS})
    def get(self, request, run_id: int):
        run = get_in_project_for_user(request.user, RUNS, run_id)
        return Response(RunSerializer(run).data)


class RunCancel(ApiView):
    @extend_schema(
        request=None,
        responses={200: RunSerializer, 409: CONFLICT, **WRITE_ERRORS},
        summary="Cancel a queued run, or ask a running one to stop",
    )
    def post(self, request, run_id: int):
        run = get_in_project_for_user(request.user, RUNS, run_id, write=True)
        try:
            cancel(run)
        except InvalidTransition as exc:
            raise Conflict(str(exc)) from None
        return Response(RunSerializer(RUNS.get(pk=run.pk)).data)


# --- versions -------------------------------------------------------------------------------------


def version_json(version: ModelVersion) -> dict:
    version.project.refresh_from_db(fields=["serving_version"])
    return VersionSerializer(version).data


class VersionList(ApiView):
    @extend_schema(
        responses={200: VersionSerializer(many=True), **READ_ERRORS}, summary="A project's model versions"
    )
    def get(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id)
        context = {"serving_id": project.serving_version_id}
        return Response(VersionSerializer(project.versions.defer("learned"), many=True, context=context).data)


class VersionDetail(ApiView):
    @extend_schema(responses={200: VersionSerializer, **READ_ERRORS})
    def get(self, request, version_id: int):
        version = get_in_project_for_user(request.user, VERSIONS, version_id)
        return Response(VersionSerializer(version).data)

    @extend_schema(
        responses={204: None, 409: CONFLICT, **WRITE_ERRORS},
        summary="Delete a version that does not serve, and its artifact",
    )
    def delete(self, request, version_id: int):
        version = get_in_project_for_user(request.user, VERSIONS, version_id, write=True)
        try:
            version.delete()
        except (ArtifactInUse, ProtectedError) as exc:
            message = (
                str(exc) if isinstance(exc, ArtifactInUse) else "this version serves; promote another first"
            )
            raise Conflict(message) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class VersionPromote(ApiView):
    @extend_schema(
        request=None,
        responses={200: VersionSerializer, 409: CONFLICT, **WRITE_ERRORS},
        summary="Serve this version (refused when its artifact is broken)",
    )
    def post(self, request, version_id: int):
        version = get_in_project_for_user(request.user, VERSIONS, version_id, write=True)
        try:
            version.promote(request.user)
        except ArtifactBroken as exc:
            raise Conflict(str(exc)) from None
        return Response(version_json(version))


class VersionThreshold(ApiView):
    @extend_schema(
        request=ThresholdSerializer,
        responses={200: VersionSerializer, **WRITE_ERRORS},
        summary="When the version answers: one threshold, or each label's (multi-label); no retraining",
        description=(
            "Changes how this version serves at once: predictions below the threshold come back with "
            "`sure: false`. Each change is recorded. The version's results page shows what each "
            "threshold would have done on the pictures it was scored on."
        ),
    )
    def post(self, request, version_id: int):
        version = get_in_project_for_user(request.user, VERSIONS, version_id, write=True)
        body = ThresholdSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        values = body.validated_data
        multi = version.project.multi_label
        if multi != ("thresholds" in values):
            kind = "multi-label: send thresholds" if multi else "single-label: send threshold"
            raise BadRequest(f"this version is {kind}")
        if multi:
            try:
                chosen = label_thresholds.parse_all(version, values["thresholds"])
            except BadThreshold as exc:
                raise BadRequest(f"thresholds: {exc}") from None
            label_thresholds.set_label_thresholds(version, chosen, request.user)
        else:
            set_threshold(version, values["threshold"] or None, request.user)
        return Response(version_json(version))


class Rollback(ApiView):
    @extend_schema(
        request=None,
        responses={200: VersionSerializer, 409: CONFLICT, **WRITE_ERRORS},
        summary="Serve again the version that served before the current one",
    )
    def post(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id, write=True)
        try:
            version = rollback(project, request.user)
        except (ArtifactInUse, ArtifactBroken) as exc:
            raise Conflict(str(exc)) from None
        return Response(version_json(version))


class VersionDownload(DownloadView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="manifest, weights, ONNX"
            ),
            409: CONFLICT,
            **READ_ERRORS,
        },
        summary="Download the version as a zip (manifest.json, head weights, model.onnx)",
    )
    def get(self, request, version_id: int):
        version = get_in_project_for_user(request.user, VERSIONS, version_id)
        if not version.artifact_files():
            raise Conflict(f"v{version.number} has no stored files; its artifact is missing")
        filename = f"{slugify(version.project.name)[:40] or 'model'}-v{version.number}.zip"
        response = HttpResponse(zip_artifact(version), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        return response
