"""Refuse oversized request bodies before reading them, so a huge upload costs
the server nothing.

Django caps neither file uploads nor the number of bytes it reads for them, and gunicorn does not
either: a 60 MB POST would be read and spooled to disk before any view could refuse it. The
middleware answers 413 from the Content-Length header alone; the upload handler stops a body that
declares no length (chunked) once it has passed the limit.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpResponse, JsonResponse


def _limit_bytes() -> int:
    return int(settings.PINHOLE_MAX_REQUEST_MB * 1024 * 1024)


def _too_large(request) -> HttpResponse:
    message = f"request too large: the limit is {settings.PINHOLE_MAX_REQUEST_MB:g} MB per request"
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse({"detail": message}, status=413)
    else:
        response = HttpResponse(message, status=413, content_type="text/plain; charset=utf-8")
    # The unread body cannot be skipped safely; close the connection instead of reusing it.
    response["Connection"] = "close"
    return response


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > _limit_bytes():
            return _too_large(request)
        return self.get_response(request)


class LimitedUploadHandler(FileUploadHandler):
    """Counts uploaded bytes across all files of a request and stops past the limit."""

    def __init__(self, request=None):
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > _limit_bytes():
            raise StopUpload(connection_reset=True)
        return raw_data

    def file_complete(self, file_size):
        return None
