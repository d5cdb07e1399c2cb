"""Who may reach a share link's public endpoints, and the JSON a refusal answers with.

One lookup for every public endpoint (the page, its predictions, its corrections, "run on this
device"): a wrong token counts against the caller's address before the lookup, and is given back when
the token is right, so guessing tokens is throttled and working links are not.
"""

from __future__ import annotations

from django.conf import settings
from django.http import JsonResponse

from webui.lib.rates import Rate
from webui.ratelimit import limiter
from webui.serving.models import ShareLink


def per_minute(name: str) -> Rate:
    """A limit from the settings, per minute (read per request: settings overrides take effect)."""
    return Rate(int(getattr(settings, name)), 60)


def too_many_json(retry_after: int) -> JsonResponse:
    response = JsonResponse(
        {"detail": f"Too many tries from your network; wait {retry_after} seconds and try again."}, status=429
    )
    response["Retry-After"] = str(retry_after)
    return response


def bad(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"detail": message}, status=status)


def lookup(request, token: str):
    """(link, None) for a live token; (None, response) for a throttled client or a dead token."""
    ip = limiter.client_ip(request)
    failures = per_minute("PINHOLE_SHARE_LOOKUP_FAILURES_PER_MINUTE")
    # Count the lookup as a miss first, and give it back when the token is right: exact under load.
    wait = limiter.hit("share-miss", ip, failures)
    if wait:
        return None, wait
    link = ShareLink.lookup(token)
    if link is None:
        return None, None
    limiter.refund("share-miss", ip, failures)
    return link, None


def public_link(request, token: str):
    """(the live link, None) for a token, or (None, the 429 or 404 answer) for a POST to a share page."""
    link, wait = lookup(request, token)
    if wait:
        return None, too_many_json(wait)
    if link is None:
        return None, bad("Not found.", status=404)
    return link, None
