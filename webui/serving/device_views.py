"""A share page's "run on this device": its settings and its model, for links whose owner allowed it.

Public, no account: the token is the only key, with the same lookup (and its throttle on wrong tokens)
as the page itself. A link that does not allow it answers "not found", like an unknown token.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import FileResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET

from webui.lib.rates import Rate
from webui.ratelimit import limiter
from webui.serving.ondevice import device_config, model_file
from webui.serving.public_access import bad, public_link, too_many_json
from webui.serving.services import NoModel
from webui.training.artifacts import ArtifactBroken

log = logging.getLogger(__name__)


def _device_link(request, token: str):
    link, refused = public_link(request, token)
    if refused:
        return None, refused
    if not link.on_device:
        return None, bad("Not found.", status=404)
    return link, None


@never_cache
@xframe_options_exempt
@require_GET
def public_device(request, token: str):
    link, refused = _device_link(request, token)
    if refused:
        return refused
    try:
        return JsonResponse(device_config(link, token))
    except NoModel:
        return bad("This model is not ready yet.", status=409)
    except ArtifactBroken:
        log.warning("share link %s: the model cannot load", link.pk, exc_info=True)
        return bad("This model cannot answer right now.", status=503)


@xframe_options_exempt
@require_GET
def public_model(request, token: str, version_id: int):
    link, refused = _device_link(request, token)
    if refused:
        return refused
    wait = limiter.hit(
        "share-model", limiter.client_ip(request), Rate(settings.PINHOLE_SHARE_MODELS_PER_HOUR, 3600)
    )
    if wait:
        return too_many_json(wait)
    try:
        path = model_file(link, version_id)
    except NoModel as exc:
        return bad(str(exc), status=409)
    except ArtifactBroken:
        log.warning("share link %s: the model cannot load", link.pk, exc_info=True)
        return bad("This model cannot answer right now.", status=503)
    response = FileResponse(path.open("rb"), content_type="application/octet-stream")
    # The address names the version, whose graph never changes: the visitor's browser may keep it.
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response
