"""Human-readable API docs served entirely by the app (self-hosted installs may be offline)."""

from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.views import SpectacularSwaggerView

METHODS = ("get", "post", "put", "patch", "delete")


def _uses_sidecar() -> bool:
    return spectacular_settings.SWAGGER_UI_DIST == "SIDECAR"


@require_GET
def docs(request):
    """Swagger UI from drf-spectacular-sidecar's local assets when configured, else a plain endpoint list."""
    if _uses_sidecar():
        return SpectacularSwaggerView.as_view(url_name="api:schema")(request)
    return _endpoint_list(request)


def _endpoint_list(request):
    schema = SchemaGenerator(patterns=None, urlconf=None).get_schema(request=None, public=True)
    endpoints = []
    for path, operations in schema.get("paths", {}).items():
        for method in METHODS:
            operation = operations.get(method)
            if operation is None:
                continue
            endpoints.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": operation.get("summary") or operation.get("description", "").split("\n")[0],
                    "responses": ", ".join(sorted(operation.get("responses", {}))),
                }
            )
    return render(
        request,
        "api/docs.html",
        {"title": schema["info"]["title"], "version": schema["info"]["version"], "endpoints": endpoints},
    )
