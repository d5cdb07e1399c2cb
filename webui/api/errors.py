"""Every API error is JSON with one readable `detail`; field errors stay available under `errors`."""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler


class Conflict(APIException):
    """The request is valid but the object's state forbids it (serving version, finished run)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "This conflicts with the current state of the object."
    default_code = "conflict"


class BadRequest(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_detail = "Bad request."
    default_code = "bad_request"


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


def readable(detail, field: str | None = None) -> str:
    """Flatten DRF's nested validation errors into one sentence a person can act on."""
    if isinstance(detail, dict):
        parts = []
        for name, value in detail.items():
            prefix = None if name in ("non_field_errors", "detail") else name
            if field and prefix:
                prefix = f"{field}.{prefix}"
            parts.append(readable(value, prefix or field))
        return "; ".join(p for p in parts if p)
    if isinstance(detail, list):
        return "; ".join(readable(item, field) for item in detail)
    text = str(detail)
    return f"{field}: {text}" if field else text


def exception_handler(exc, context):
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        response.data = {"detail": readable(exc.detail), "errors": exc.detail}
    return response


class JsonErrors:
    """Mixin for API views: the house error shape without touching global DRF settings."""

    def get_exception_handler(self):
        return exception_handler


def _is_api(request) -> bool:
    return request.path.startswith("/api/")


def not_found(request, exception=None):
    """404 for a URL no route matches: JSON under /api/ (clients parse it), the site's page elsewhere."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if _is_api(request):
        return JsonResponse({"detail": "Not found."}, status=404)
    return page_not_found(request, exception)


def server_error(request):
    """500: JSON under /api/, the site's page elsewhere; never a traceback."""
    from django.http import JsonResponse
    from django.views.defaults import server_error as page_server_error

    if _is_api(request):
        return JsonResponse({"detail": "Internal error; it has been logged."}, status=500)
    return page_server_error(request)
