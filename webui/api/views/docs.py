"""Interactive API docs (Swagger UI) served from the app's own static files: installs may be offline."""

from __future__ import annotations

from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularSwaggerSplitView

# The split view serves its start-up script as a file, so the page runs under a CSP without inline scripts.
_swagger = SpectacularSwaggerSplitView.as_view(url_name="api:schema")


@require_GET
def docs(request):
    """Swagger UI for /api/v1/schema/, with drf-spectacular-sidecar's local assets."""
    return _swagger(request)
