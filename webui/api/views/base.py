"""Shared pieces of the API views: error shape, throttling, reading uploads, common responses."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from webui.api.errors import BadRequest, ErrorSerializer, JsonErrors
from webui.lib.rates import as_rate
from webui.projects.ingest import UploadRejected, read_image_upload
from webui.ratelimit import limiter
from webui.ratelimit.limiter import client_ip


class ApiView(JsonErrors, APIView):
    pass


class DownloadView(ApiView):
    """An endpoint whose success body is a file, not rendered data: a client asking for that file's
    type must not get 406; errors still render as JSON."""

    def perform_content_negotiation(self, request, force=False):
        return super().perform_content_negotiation(request, force=True)


class PredictThrottle(BaseThrottle):
    """Per-user (per-IP for anonymous callers) limit on endpoints that run a model, counted by the
    site's one rate limiter. The rate is PINHOLE_API_PREDICT_RATE, read per request so settings
    overrides take effect."""

    scope = "api-predict"

    def allow_request(self, request, view) -> bool:
        rate = as_rate(settings.PINHOLE_API_PREDICT_RATE)
        user = getattr(request, "user", None)
        who = f"user:{user.pk}" if user is not None and user.is_authenticated else f"ip:{client_ip(request)}"
        self.waiting = limiter.hit(self.scope, who, rate)
        return self.waiting is None

    def wait(self) -> float | None:
        return self.waiting


def error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


UNAUTHORIZED = error("Not signed in (send a token or a session cookie).")
NOT_FOUND = error("No such object, or the caller may not see it.")
FORBIDDEN = error("The caller's role does not allow this.")
BAD_REQUEST = error("Invalid input; `detail` says what to fix.")
CONFLICT = error("The object's state does not allow this.")
THROTTLED = error("Too many requests; retry after the Retry-After header's seconds.")

READ_ERRORS = {401: UNAUTHORIZED, 404: NOT_FOUND}
WRITE_ERRORS = {400: BAD_REQUEST, 401: UNAUTHORIZED, 403: FORBIDDEN, 404: NOT_FOUND}


def uploaded_image_bytes(request, field: str = "file") -> bytes:
    """One uploaded file's bytes, refusing anything over PINHOLE_MAX_IMAGE_MB without reading on."""
    uploaded = request.FILES.get(field)
    if uploaded is None:
        raise BadRequest(f"send the image as multipart/form-data in the {field!r} field")
    try:
        return read_image_upload(uploaded)
    except UploadRejected as exc:
        raise BadRequest(str(exc)) from None
