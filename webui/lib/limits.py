"""Refuse oversized request bodies before reading them, so a huge upload costs
the server nothing.

Django caps neither file uploads nor the number of bytes it reads for them, and gunicorn does not
either: a 60 MB POST would be read and spooled to disk before any view could refuse it. The
middleware answers 413 from the Content-Length header alone; the upload handler stops a body that
declares no length (chunked) once it has passed the limit. A refusal that left a body within the limit
unread reads it afterwards, so a keep-alive client's next request is never read from its middle.
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
    return response


def _close_after(request, response) -> None:
    """Ask the server to close the connection after this answer: the rest of the request's body was
    never read, and a client that reused the connection would have its next request read from the
    middle of that body. gunicorn honours the header; wsgiref (runserver) refuses hop-by-hop headers
    from applications, and closes such connections itself."""
    if not request.META.get("SERVER_SOFTWARE", "").startswith("WSGIServer"):
        response["Connection"] = "close"


def _drain(request) -> None:
    try:
        while request.read(64 * 1024):
            pass
    except (OSError, ValueError):  # the client went away: nothing left to keep in step
        pass


def _body_unread(request) -> bool:
    has_body = request.META.get("CONTENT_LENGTH", "") not in ("", "0") or (
        request.META.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    )
    return has_body and not getattr(request, "_read_started", False)


class RequestSizeLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > _limit_bytes():
            response = _too_large(request)
            _close_after(request, response)
            return response
        response = self.get_response(request)
        if response.status_code >= 400 and _body_unread(request):
            # Refused before its body was read (401, 403, 404, 429 ...). Read it now (it is within the
            # limit): a server that keeps the connection would otherwise read the client's next request
            # from the middle of this body, and gunicorn does not honour an application's
            # "Connection: close".
            _drain(request)
        return response


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
