"""Predictions with a project's model, and what a pretrained backbone itself sees."""

from __future__ import annotations

import threading

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from webui.api.errors import BadRequest, Conflict
from webui.api.serializers import (
    BackboneImageSerializer,
    FeaturesSerializer,
    PredictionSerializer,
    PredictOptionsSerializer,
    PredictRequestSerializer,
    RecognitionSerializer,
)
from webui.api.views.base import (
    CONFLICT,
    THROTTLED,
    WRITE_ERRORS,
    ApiView,
    PredictThrottle,
    uploaded_image_bytes,
)
from webui.lib.backbones import backbone_dir
from webui.projects.access import get_project_for_user
from webui.serving import records
from webui.serving.models import PredictionRecord
from webui.serving.services import BadImage, NoModel, predict
from webui.training.artifacts import ArtifactBroken


class ModelView(ApiView):
    """Views that run a model: multipart input, the "predict" throttle."""

    parser_classes = [MultiPartParser, FormParser]
    throttle_classes = [PredictThrottle]


class Predict(ModelView):
    @extend_schema(
        request={"multipart/form-data": PredictRequestSerializer},
        responses={
            200: PredictionSerializer,
            400: WRITE_ERRORS[400],
            401: WRITE_ERRORS[401],
            404: WRITE_ERRORS[404],
            409: CONFLICT,
            429: THROTTLED,
        },
        summary="Classify one image with the serving (or a given) version; viewers may predict",
    )
    def post(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id)
        data = uploaded_image_bytes(request)
        form = PredictOptionsSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        try:
            result = predict(
                project,
                data,
                version_id=form.validated_data.get("version"),
                top_k=form.validated_data["top_k"],
            )
        except NoModel as exc:
            raise Conflict(str(exc)) from None
        except ArtifactBroken as exc:
            raise Conflict(str(exc)) from None
        except BadImage as exc:
            raise BadRequest(str(exc)) from None
        records.record(project, result, PredictionRecord.Source.API, data)
        return Response(result)


# --- the backbone on its own ----------------------------------------------------------------------

_extractors: dict[str, object] = {}
_extractors_lock = threading.Lock()


def extractor_for(backbone: str):
    """One ONNX Runtime extractor per backbone per process; built once even under concurrent requests."""
    from classifier.features import Extractor

    with _extractors_lock:
        extractor = _extractors.get(backbone)
        if extractor is None:
            # device="cpu" keeps torch out of the web process (no CUDA probe); ONNX files are cached.
            extractor = Extractor(backbone, device="cpu", onnx_dir=backbone_dir())
            _extractors[backbone] = extractor
        return extractor


def _backbone_request(request) -> tuple[bytes, str]:
    """The image (validated before any model loads) and a known backbone name."""
    from classifier.backbones import BACKBONES
    from classifier.errors import ImageError
    from classifier.preprocessing import inspect_image

    data = uploaded_image_bytes(request)
    backbone = request.data.get("backbone") or settings.PINHOLE_DEFAULT_BACKBONE
    if backbone not in BACKBONES:
        raise BadRequest(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    try:
        inspect_image(data)
    except ImageError as exc:
        raise BadRequest(str(exc)) from None
    return data, backbone


BACKBONE_ERRORS = {400: WRITE_ERRORS[400], 401: WRITE_ERRORS[401], 429: THROTTLED}


class Features(ModelView):
    @extend_schema(
        request={"multipart/form-data": BackboneImageSerializer},
        responses={200: FeaturesSerializer, **BACKBONE_ERRORS},
        summary="The backbone's pooled feature vector for one image",
    )
    def post(self, request):
        from classifier.errors import BackboneUnavailable, ImageError

        data, backbone = _backbone_request(request)
        try:
            vector = extractor_for(backbone).extract([data])[0]
        except (ImageError, BackboneUnavailable) as exc:
            raise BadRequest(str(exc)) from None
        return Response(
            {"backbone": backbone, "dim": int(vector.shape[0]), "vector": [float(x) for x in vector]}
        )


class Recognize(ModelView):
    @extend_schema(
        request={"multipart/form-data": BackboneImageSerializer},
        responses={200: RecognitionSerializer, **BACKBONE_ERRORS},
        summary="What the pretrained backbone sees: its top ImageNet classes",
    )
    def post(self, request):
        from classifier.errors import BackboneUnavailable, ImageError
        from classifier.recognition import recognize

        data, backbone = _backbone_request(request)
        try:
            top = recognize([data], backbone=backbone, top_k=5, onnx_dir=backbone_dir())[0]
        except (ImageError, BackboneUnavailable) as exc:
            raise BadRequest(str(exc)) from None
        return Response(
            {
                "backbone": backbone,
                "top": [{"label": name, "probability": round(float(p), 6)} for name, p in top],
            }
        )
