"""Batch prediction: a project's images through one version, computed by a worker."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from webui.api.errors import Conflict
from webui.api.serializers import BatchRequestSerializer, BatchSerializer
from webui.api.views.base import CONFLICT, READ_ERRORS, WRITE_ERRORS, ApiView
from webui.projects.access import get_in_project_for_user, get_project_for_user
from webui.serving.batch import start_batch
from webui.serving.models import BatchPrediction
from webui.serving.services import NoModel

BATCHES = BatchPrediction.objects.select_related("version")


class BatchCreate(ApiView):
    @extend_schema(
        request=BatchRequestSerializer,
        responses={202: BatchSerializer, 409: CONFLICT, **WRITE_ERRORS},
        summary="Predict many of the project's images in the background",
        description="202 with the queued batch; poll it until `status` is `succeeded` for `results`.",
    )
    def post(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id)  # viewers may predict
        form = BatchRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            batch = start_batch(
                project, request.user, scope=form.validated_data["scope"],
                version_id=form.validated_data.get("version"),
            )  # fmt: skip
        except NoModel as exc:
            raise Conflict(str(exc)) from None
        return Response(BatchSerializer(BATCHES.get(pk=batch.pk)).data, status=status.HTTP_202_ACCEPTED)


class BatchDetail(ApiView):
    @extend_schema(
        responses={200: BatchSerializer, **READ_ERRORS}, summary="A batch prediction and its results"
    )
    def get(self, request, batch_id: int):
        batch = get_in_project_for_user(request.user, BATCHES, batch_id)
        return Response(BatchSerializer(batch).data)
