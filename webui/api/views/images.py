"""Uploading, listing, labelling and deleting images."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import TooManyFilesSent
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import generics, status
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from webui.api.errors import BadRequest, ErrorSerializer, JsonErrors
from webui.api.serializers import (
    ImageSerializer,
    ImageUpdateSerializer,
    UploadedImageSerializer,
    UploadResultSerializer,
    UploadSerializer,
    escaped_name,
)
from webui.api.views.base import BAD_REQUEST, READ_ERRORS, WRITE_ERRORS, ApiView
from webui.projects.access import get_in_project_for_user, get_project_for_user
from webui.projects.images import delete_image
from webui.projects.ingest import UploadRejected, ingest_image
from webui.projects.labels import clear_labels, get_or_create_label, set_label, set_labels
from webui.projects.models import Image
from webui.serving import suggestions


class ImagePagination(LimitOffsetPagination):
    """`limit` (1..500, default 100) and `offset`; a value that is not a whole number is a 400, not
    silently the first page (a client with a bug would otherwise loop over page one forever)."""

    default_limit = 100
    max_limit = 500

    def paginate_queryset(self, queryset, request, view=None):
        for name, low in ((self.limit_query_param, 1), (self.offset_query_param, 0)):
            value = request.query_params.get(name)
            if value is not None and not (value.isascii() and value.isdigit() and int(value) >= low):
                raise BadRequest(f"{name} must be a whole number of at least {low}, not {value[:40]!r}")
        return super().paginate_queryset(queryset, request, view)


def _with_labels(images):
    return images.select_related("label", "project").prefetch_related("labels")


def _too_many() -> BadRequest:
    return BadRequest(f"at most {settings.PINHOLE_MAX_FILES_PER_REQUEST} files per request")


class ImageList(JsonErrors, generics.ListAPIView):
    serializer_class = ImageSerializer
    pagination_class = ImagePagination
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        project = get_project_for_user(self.request.user, self.kwargs["project_id"])
        images = project.images.select_related("label", "project").prefetch_related("labels")
        params = self.request.query_params
        if params.get("label"):
            by_name = "labels__name__iexact" if project.multi_label else "label__name__iexact"
            images = images.filter(**{by_name: params["label"]})
        unlabeled = params.get("unlabeled")
        if unlabeled is not None:
            if unlabeled.lower() not in ("true", "false", "1", "0"):
                raise BadRequest(f"unlabeled must be true or false, not {unlabeled[:40]!r}")
            if unlabeled.lower() in ("true", "1"):
                images = images.unlabeled()
        order = params.get("order", "newest")
        if order == "next":
            version = project.serving_version
            if version is None:
                raise BadRequest("order=next needs a model: train one first")
            suggestions.request_refresh(version, self.request.user)  # pictures it has not looked at yet
            return suggestions.ordered_next(version, images)
        if order != "newest":
            raise BadRequest(f"order must be newest or next, not {order[:40]!r}")
        return images

    @extend_schema(
        parameters=[
            OpenApiParameter("label", OpenApiTypes.STR, description="only images with this label (by name)"),
            OpenApiParameter("unlabeled", OpenApiTypes.BOOL, description="only images without a label"),
            OpenApiParameter(
                "order",
                OpenApiTypes.STR,
                enum=["newest", "next"],
                description=(
                    "newest first (the default), or `next`: the pictures a label would teach the serving "
                    "model most first (unsure of them, unlike those labelled, typical of many others). "
                    "A worker works the order out after each training and upload; pictures it has not "
                    "ordered yet come last, newest first."
                ),
            ),
        ],
        responses={200: ImageSerializer(many=True), 400: BAD_REQUEST, **READ_ERRORS},
    )
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request={"multipart/form-data": UploadSerializer},
        responses={
            201: UploadResultSerializer,
            200: UploadResultSerializer,
            400: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="UploadRefused",
                    serializers=[UploadResultSerializer, ErrorSerializer],
                    resource_type_field_name=None,
                ),
                description="every file was refused (`rejected` says why), or the request itself was wrong (`detail`)",
            ),
            401: WRITE_ERRORS[401],
            403: WRITE_ERRORS[403],
            404: WRITE_ERRORS[404],
        },
        summary="Upload images (duplicates by content are returned, not stored twice)",
        description=(
            "201 when at least one image was new, 200 when all were already in the project, "
            "400 (same body, or `detail`) when every file was rejected."
        ),
    )
    def post(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id, write=True)
        try:
            files = request.FILES.getlist("files")
            label_name = request.data.get("label")
            names = request.data.getlist("labels") if hasattr(request.data, "getlist") else []
        except TooManyFilesSent:
            raise _too_many() from None
        if len(files) > settings.PINHOLE_MAX_FILES_PER_REQUEST:
            raise _too_many()
        if not files:
            raise BadRequest("send one or more images as multipart/form-data in the 'files' field")
        if names and not project.multi_label:
            raise BadRequest("labels: this project gives one label per picture; send it as label")
        label, labels = None, None
        try:
            if label_name:
                label = get_or_create_label(project, label_name)
            if names:
                labels = [get_or_create_label(project, name) for name in names]
        except ValueError as exc:
            raise BadRequest(f"label: {exc}") from None

        images, rejected, created = [], [], 0
        for index, uploaded in enumerate(files):
            try:
                result = ingest_image(project, request.user, uploaded, label=label, labels=labels)
            except UploadRejected as exc:
                rejected.append(
                    {"index": index, "name": escaped_name(uploaded.name or ""), "error": str(exc)}
                )
                continue
            result.image.duplicate = not result.created
            created += result.created
            images.append(result.image)
        body = {"images": UploadedImageSerializer(images, many=True).data, "rejected": rejected}
        if not images:
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class ImageDetail(ApiView):
    @extend_schema(responses={200: ImageSerializer, **READ_ERRORS})
    def get(self, request, image_id: int):
        image = get_in_project_for_user(request.user, _with_labels(Image.objects.all()), image_id)
        return Response(ImageSerializer(image).data)

    @extend_schema(
        request=ImageUpdateSerializer,
        responses={200: ImageSerializer, **WRITE_ERRORS},
        summary="Set or clear the label or labels (by name; created if missing), or pin the split",
    )
    def patch(self, request, image_id: int):
        image = get_in_project_for_user(request.user, Image.objects.all(), image_id, write=True)
        form = ImageUpdateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = form.validated_data
        same = Image.objects.filter(pk=image.pk)
        if "labels" in values:
            if not image.project.multi_label:
                raise BadRequest("labels: this project gives one label per picture; send it as label")
            if "label" in values:
                raise BadRequest("send label or labels, not both")
            if values["labels"] is None:
                clear_labels(same)
            else:
                try:
                    chosen = [get_or_create_label(image.project, name) for name in values["labels"]]
                except ValueError as exc:
                    raise BadRequest(f"labels: {exc}") from None
                set_labels(same, chosen)
        elif "label" in values and image.project.multi_label:
            if values["label"] is None:
                clear_labels(same)
            else:
                try:
                    set_labels(same, [get_or_create_label(image.project, values["label"])])
                except ValueError as exc:
                    raise BadRequest(f"label: {exc}") from None
        elif "label" in values:
            label = None
            if values["label"] is not None:
                try:
                    label = get_or_create_label(image.project, values["label"])
                except ValueError as exc:
                    raise BadRequest(f"label: {exc}") from None
            set_label(same, label)
        if "split" in values:
            same.update(split=values["split"])
        return Response(ImageSerializer(_with_labels(same).get()).data)

    @extend_schema(responses={204: None, **WRITE_ERRORS})
    def delete(self, request, image_id: int):
        image = get_in_project_for_user(request.user, Image.objects.all(), image_id, write=True)
        delete_image(image)
        return Response(status=status.HTTP_204_NO_CONTENT)


class Dataset(ApiView):
    def perform_content_negotiation(self, request, force=False):
        # The success body is a zip, not rendered data; errors still render as JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "version",
                OpenApiTypes.INT,
                description="a version id: only the photos it learned from, with the labels they had then",
            )
        ],
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="one folder per label, labels.csv, README.txt"
            ),
            400: BAD_REQUEST,
            **READ_ERRORS,
        },
        summary="Download the labelled images as a dataset zip (Pinhole's zip upload imports it back)",
    )
    def get(self, request, project_id: int):
        from webui.projects import export

        project = get_project_for_user(request.user, project_id)
        unknown = sorted(set(request.query_params) - {"version"})
        if unknown:
            raise BadRequest(f"unknown parameter {unknown[0][:40]!r}; the only one is version")
        version = None
        asked = request.query_params.get("version")
        if asked is not None:
            if not (asked.isascii() and asked.isdigit()):
                raise BadRequest(f"version must be a version id, not {asked[:40]!r}")
            version = project.versions.filter(pk=int(asked)).first()
            if version is None:
                raise BadRequest("this project has no such version")
        return export.download(project, version)
