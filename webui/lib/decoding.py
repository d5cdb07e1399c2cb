"""A budget for decoding pictures inside web requests: how many pixels, how many at once, and the
memory given back afterwards.

A small file can hold a huge picture (a 10 KB PNG of 9400 x 9400 one-bit pixels decodes to 265 MB of
RGB), and decoding is CPU-bound: a few of them at once used to take every web thread and leave
gigabytes allocated. So, in every request that decodes:
- `check_pixels` refuses by the header alone what would decode to more than the purpose needs
  (a prediction a few megapixels: JPEGs are decoded reduced, as draft mode does; an upload more, it
  is kept), before a byte of pixel data is touched;
- `slot()` lets at most PINHOLE_DECODE_SLOTS decodes run at once in a process; a request that cannot
  get one within PINHOLE_DECODE_WAIT_S is answered 503 "busy" instead of queueing without end;
- after a large decode, the C allocator is asked to return freed memory to the system (glibc keeps
  it otherwise, which is what left 2.8 GB allocated).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from functools import lru_cache

from django.conf import settings

from classifier.errors import ImageTooLarge
from classifier.preprocessing import decoded_pixels, read_header

# A decode of more pixels than this is "large": memory is handed back after it.
TRIM_AFTER_PIXELS = 4_000_000


class DecoderBusy(Exception):
    """Every decoding slot of this process stayed taken for PINHOLE_DECODE_WAIT_S."""


@lru_cache(maxsize=1)
def _slots() -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(settings.PINHOLE_DECODE_SLOTS)


@lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc: nothing to ask
        return None


def give_memory_back() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def check_pixels(data: bytes, max_megapixels: float, *, target_size: int | None = None, purpose: str) -> int:
    """Refuse, from the header, a picture that would decode to more than `max_megapixels`.

    Returns:
        the pixels the decode will produce.
    Raises:
        ImageTooLarge (with the numbers and the purpose); InvalidImage and the like for non-images.
    """
    header = read_header(data)
    pixels = decoded_pixels(header, target_size)
    if pixels > max_megapixels * 1_000_000:
        width, height = header.size
        raise ImageTooLarge(
            f"the image is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels); "
            f"{purpose} takes at most {max_megapixels:g} megapixels: send a smaller version"
        )
    return pixels


@contextlib.contextmanager
def slot(pixels: int = 0):
    """Hold one of this process's decoding slots while decoding; hand memory back after a large one.

    Raises:
        DecoderBusy: no slot came free within PINHOLE_DECODE_WAIT_S.
    """
    if not _slots().acquire(timeout=settings.PINHOLE_DECODE_WAIT_S):
        raise DecoderBusy("the server is busy decoding other pictures; try again in a few seconds")
    try:
        yield
    finally:
        _slots().release()
        if pixels > TRIM_AFTER_PIXELS:
            give_memory_back()


class BusyMiddleware:
    """Turns DecoderBusy, wherever it is raised, into 503 with Retry-After: JSON for the API and the
    pages' scripts, a sentence otherwise."""

    RETRY_AFTER_S = 5

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        from django.http import HttpResponse, JsonResponse

        if not isinstance(exception, DecoderBusy):
            return None
        wants_json = request.path.startswith("/api/") or "json" in request.headers.get("Accept", "")
        wants_json = wants_json or request.headers.get("X-CSRFToken") is not None
        if wants_json:
            response = JsonResponse({"detail": str(exception)}, status=503)
        else:
            response = HttpResponse(str(exception), status=503, content_type="text/plain; charset=utf-8")
        response["Retry-After"] = str(self.RETRY_AFTER_S)
        return response
