"""Exports of a version to other formats: ask for one, follow it, download it."""

from __future__ import annotations

from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.response import Response

from webui.api.errors import BadRequest, Conflict
from webui.api.serializers import ExportRequestSerializer, ExportSerializer
from webui.api.views.base import CONFLICT, READ_ERRORS, WRITE_ERRORS, ApiView, DownloadView
from webui.api.views.training import VERSIONS
from webui.projects.access import get_in_project_for_user
from webui.training.exports import ExportRefused, file_name, open_export, start_export


def _export(request, version_id: int, export_id: int):
    version = get_in_project_for_user(request.user, VERSIONS, version_id)
    export = version.exports.select_related("version__project").filter(pk=export_id).first()
    if export is None:
        raise Http404("Not found.")
    return export


class ExportList(ApiView):
    @extend_schema(responses={200: ExportSerializer(many=True), **READ_ERRORS}, summary="A version's exports")
    def get(self, request, version_id: int):
        version = get_in_project_for_user(request.user, VERSIONS, version_id)
        return Response(ExportSerializer(version.exports.order_by("-created"), many=True).data)

    @extend_schema(
        request=ExportRequestSerializer,
        responses={202: ExportSerializer, 200: ExportSerializer, **WRITE_ERRORS},
        summary="Export the version to another format in the background",
        description=(
            "202 with the queued export; 200 with the one already made or under way for that format. "
            "Poll it until `status` is `succeeded`, then GET `download`. A worker checks the export's "
            "answers against the version's before it succeeds; `parity` says how they compared."
        ),
    )
    def post(self, request, version_id: int):
        # Making an export asks a worker for minutes of work: owners and editors; members download.
        version = get_in_project_for_user(request.user, VERSIONS, version_id, write=True)
        form = ExportRequestSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            export, created = start_export(version, form.validated_data["format"], request.user)
        except ExportRefused as exc:
            raise BadRequest(str(exc)) from None
        code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
        return Response(ExportSerializer(export).data, status=code)


class ExportDetail(ApiView):
    @extend_schema(responses={200: ExportSerializer, **READ_ERRORS}, summary="One export and its state")
    def get(self, request, version_id: int, export_id: int):
        return Response(ExportSerializer(_export(request, version_id, export_id)).data)


class ExportDownload(DownloadView):
    @extend_schema(
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="the model files, pinhole.json, README, predict.py"
            ),
            409: CONFLICT,
            **READ_ERRORS,
        },
        summary="Download a finished export as a zip",
    )
    def get(self, request, version_id: int, export_id: int):
        export = _export(request, version_id, export_id)
        handle = open_export(export)
        if handle is None:
            raise Conflict(f"this export is {export.status}; download it once it has succeeded")
        return FileResponse(
            handle, as_attachment=True, filename=file_name(export), content_type="application/zip"
        )
