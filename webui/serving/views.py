"""Trying a model in the browser, and the public share pages (no account needed)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from webui.lib.backbones import backbone_dir
from webui.lib.rates import Rate
from webui.projects.access import get_project_for_user
from webui.projects.ingest import UploadRejected, read_image_upload
from webui.ratelimit import limiter
from webui.serving import records, review
from webui.serving.models import PredictionRecord, ShareLink
from webui.serving.public_access import bad, lookup, per_minute, public_link, too_many_json
from webui.serving.services import BadImage, NoModel, predict, resolve_version, revoke_link
from webui.training.artifacts import ArtifactBroken

log = logging.getLogger(__name__)

# Longest a share link can be set to last.
MAX_EXPIRY_DAYS = 365


def _too_many_page(request, retry_after: int):
    response = render(request, "serving/too_many.html", {"retry_after": retry_after}, status=429)
    response["Retry-After"] = str(retry_after)
    return response


# --- reading an uploaded image --------------------------------------------------------------------


class _Refused(Exception):
    pass


def _uploaded_bytes(request) -> bytes:
    uploaded = request.FILES.get("file")
    if uploaded is None:
        raise _Refused("Choose a photo first.")
    try:
        return read_image_upload(uploaded)
    except UploadRejected as exc:
        raise _Refused(str(exc)) from None


def _wants_heatmap(request) -> bool:
    return request.POST.get("heatmap") in ("1", "true", "on")


def _public_answer(result: dict) -> dict:
    keys = (
        "label",
        "probability",
        "top",
        "labels",
        "unknown",
        "sure",
        "threshold",
        "heatmap",
        "heatmap_label",
    )
    return {key: result[key] for key in keys if key in result}


# A share page's "Not right?" names the answer it is about by this signed id, good for a day.
FEEDBACK_SALT = "pinhole.share-feedback"
FEEDBACK_MAX_AGE_S = 24 * 3600


# --- try it (signed in) ---------------------------------------------------------------------------


@login_required
@require_GET
def try_page(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    serving = project.serving_version
    context = {
        "project": project,
        "serving": serving,
        "labels": _labels_for(project, serving),
        "can_edit": project.can_edit(request.user),
        "api_root": request.build_absolute_uri("/api/v1/"),
    }
    return render(request, "serving/try.html", context)


def _recognize(project, data: bytes) -> dict:
    from classifier.backbones import BACKBONES
    from classifier.preprocessing import inspect_image, require_min_size
    from classifier.recognition import recognize

    inspect_image(data)  # refuse a bad file before any model loads
    require_min_size(data)
    backbone = project.backbone if project.backbone in BACKBONES else settings.PINHOLE_DEFAULT_BACKBONE
    top = recognize([data], backbone=backbone, top_k=5, onnx_dir=backbone_dir())[0]
    return {
        "mode": "pretrained",
        "backbone": backbone,
        "top": [{"label": name.replace("_", " "), "probability": round(float(p), 6)} for name, p in top],
    }


@login_required
@require_POST
def try_predict(request, project_id: int):
    """One photo through the serving model, or through the pretrained network before any training."""
    from classifier.errors import BackboneUnavailable, ImageError

    project = get_project_for_user(request.user, project_id)
    wait = limiter.hit("try", str(request.user.pk), per_minute("PINHOLE_TRY_RATE_PER_MINUTE"))
    if wait:
        return too_many_json(wait)
    try:
        data = _uploaded_bytes(request)
    except _Refused as exc:
        return bad(str(exc))
    try:
        if request.POST.get("mode") != "pretrained":
            try:
                result = predict(project, data, top_k=5, heatmap=_wants_heatmap(request))
                records.record(project, result, PredictionRecord.Source.TRY, data)
                return JsonResponse({"mode": "model", **result})
            except NoModel:
                pass
        return JsonResponse(_recognize(project, data))
    except (BadImage, ImageError) as exc:
        return bad(str(exc))
    except BackboneUnavailable as exc:
        return bad(f"The pretrained network is not available on this server: {exc}", status=503)
    except ArtifactBroken as exc:
        return bad(f"The serving model cannot answer: {exc}", status=409)


# --- share links (signed in) ----------------------------------------------------------------------


def _session_key(project) -> str:
    return f"pinhole-share-token-{project.pk}"


def _remember_token(request, project, link, token: str) -> None:
    # ShareLink keeps only a hash: the plain token is shown on the next page, once, then forgotten.
    request.session[_session_key(project)] = {"link": link.pk, "token": token}


def _link_urls(request, token: str) -> dict:
    public = request.build_absolute_uri(reverse("serving:public", args=[token]))
    embed = request.build_absolute_uri(reverse("serving:embed", args=[token]))
    snippet = (
        f'<iframe src="{embed}" width="420" height="560" style="border:0;max-width:100%" '
        f'title="Pinhole image classifier" loading="lazy"></iframe>'
    )
    return {"token": token, "public": public, "embed": embed, "snippet": snippet}


@login_required
def share(request, project_id: int):
    if request.method == "POST":
        return _share_create(request, project_id)
    project = get_project_for_user(request.user, project_id)
    fresh = request.session.pop(_session_key(project), None)
    links = list(project.share_links.select_related("version").order_by("-created"))
    active = [link for link in links if link.is_active]
    context = {
        "project": project,
        "can_edit": project.can_edit(request.user),
        "active": active,
        "inactive": [link for link in links if not link.is_active][:10],
        "versions": project.versions.order_by("-number"),
        "serving": project.serving_version,
        "fresh": _link_urls(request, fresh["token"]) if fresh else None,
        "fresh_link": fresh["link"] if fresh else None,
        "max_days": MAX_EXPIRY_DAYS,
    }
    return render(request, "serving/share.html", context)


def _share_create(request, project_id: int):
    project = get_project_for_user(request.user, project_id, write=True)
    version, expires_at = None, None
    raw_version = request.POST.get("version", "")
    raw_days = request.POST.get("expires_days", "").strip()
    if raw_version:
        version = project.versions.filter(number=raw_version if raw_version.isdigit() else -1).first()
        if version is None:
            messages.error(request, "No such version in this project.")
            return redirect("serving:share", project_id=project.pk)
    if raw_days:
        if not raw_days.isdigit() or not 1 <= int(raw_days) <= MAX_EXPIRY_DAYS:
            messages.error(request, f"Expiry must be a whole number of days from 1 to {MAX_EXPIRY_DAYS}.")
            return redirect("serving:share", project_id=project.pk)
        expires_at = timezone.now() + timedelta(days=int(raw_days))
    link, token = ShareLink.create_for(
        project,
        request.user,
        version=version,
        expires_at=expires_at,
        on_device=bool(request.POST.get("on_device")),
    )
    _remember_token(request, project, link, token)
    messages.success(request, "Link created. Copy it now: for safety it is shown only this once.")
    return redirect("serving:share", project_id=project.pk)


@login_required
@require_POST
def share_revoke(request, project_id: int, link_id: int):
    project = get_project_for_user(request.user, project_id, write=True)
    link = get_object_or_404(project.share_links.select_related("project"), pk=link_id, enabled=True)
    revoke_link(link)
    messages.success(request, f"Link {link.token_hint}… revoked: it now answers “not found”.")
    return redirect("serving:share", project_id=project.pk)


@login_required
@require_POST
def share_regenerate(request, project_id: int, link_id: int):
    """A new token with the same settings; the old one stops working at once."""
    project = get_project_for_user(request.user, project_id, write=True)
    old = get_object_or_404(project.share_links.select_related("project"), pk=link_id, enabled=True)
    revoke_link(old)
    expires_at = old.expires_at if old.expires_at and old.expires_at > timezone.now() else None
    link, token = ShareLink.create_for(
        project, request.user, version=old.version, expires_at=expires_at, on_device=old.on_device
    )
    _remember_token(request, project, link, token)
    messages.success(request, "New link made and the old one revoked. Copy the new one now.")
    return redirect("serving:share", project_id=project.pk)


# --- public pages (no account) --------------------------------------------------------------------


def _not_found(request):
    # One body for unknown, revoked and expired tokens: nothing tells a guesser which it was.
    return render(request, "serving/not_found.html", status=404)


def _labels_for(project, version) -> list[dict]:
    colours = dict(project.labels.values_list("name", "colour"))
    names = list(version.labels) if version else list(colours)
    return [{"name": name, "colour": colours.get(name, "#6b7280")} for name in names]


def _public_context(link: ShareLink) -> dict:
    try:
        version = resolve_version(link.project, link.version_id)
    except NoModel:
        version = None
    labels = _labels_for(link.project, version)
    return {
        "project": link.project,
        "ready": version is not None,
        "labels": labels,
        "label_names_json": json.dumps([label["name"] for label in labels]),
    }


def _public_page(request, token: str, template: str):
    link, wait = lookup(request, token)
    if wait:
        return _too_many_page(request, wait)
    if link is None:
        return _not_found(request)
    context = {**_public_context(link), "token": token}
    if link.on_device:
        context["device_url"] = reverse("serving:public_device", args=[token])
    response = render(request, template, context)
    if link.on_device:
        # onnxruntime-web compiles its WebAssembly; nothing else on the page may run code it did not load.
        response._csp_update = {"script-src": ["'wasm-unsafe-eval'"]}
    return response


@never_cache
@require_GET
def public(request, token: str):
    return _public_page(request, token, "serving/public.html")


@never_cache
@xframe_options_exempt
@require_GET
def embed(request, token: str):
    response = _public_page(request, token, "serving/embed.html")
    if response.status_code == 200:
        response._csp_replace = {"frame-ancestors": ["*"]}  # any site may embed a live share page
    else:
        response["X-Frame-Options"] = "DENY"  # never a framed 404 or 429 (the CSP denies it too)
    return response


# The public predict takes no session and changes nothing but a rate counter, and it must work from
# the embed inside another site's frame, where the browser withholds the (SameSite=Lax) CSRF cookie.
@csrf_exempt
@never_cache
@xframe_options_exempt
@require_POST
def public_predict(request, token: str):
    link, refused = public_link(request, token)
    if refused:
        return refused
    wait = limiter.hit(
        "share-predict", limiter.client_ip(request), per_minute("PINHOLE_SHARE_RATE_PER_MINUTE")
    )
    if wait:
        return too_many_json(wait)
    try:
        data = _uploaded_bytes(request)
        result = predict(
            link.project, data, version_id=link.version_id, top_k=5, heatmap=_wants_heatmap(request)
        )
    except _Refused as exc:
        return bad(str(exc))
    except BadImage as exc:
        return bad(str(exc))
    except NoModel:
        return bad("This model is not ready yet.", status=409)
    except ArtifactBroken:
        log.warning("share link %s: the model cannot load", link.pk, exc_info=True)
        return bad("This model cannot answer right now.", status=503)
    answer = _public_answer(result)
    row = records.record(link.project, result, PredictionRecord.Source.SHARE, data)
    if row is not None and "labels" not in result:  # corrections name one label: single-label only
        answer["feedback"] = signing.dumps(row.pk, salt=FEEDBACK_SALT)
    return JsonResponse({"mode": "model", **answer})


@csrf_exempt
@never_cache
@xframe_options_exempt
@require_POST
def public_feedback(request, token: str):
    """ "Not right? Pick the right one": a visitor sends the photo again with the label it shows. It
    waits in the review queue; only a member's review makes it a label."""
    link, refused = public_link(request, token)
    if refused:
        return refused
    try:
        record_id = signing.loads(
            request.POST.get("feedback", ""), salt=FEEDBACK_SALT, max_age=FEEDBACK_MAX_AGE_S
        )
    except signing.BadSignature:
        return bad("This answer can no longer be corrected; ask again, then correct it.")
    row = PredictionRecord.objects.filter(pk=record_id, project=link.project).first()
    if row is None:
        return bad("This answer can no longer be corrected; ask again, then correct it.")
    rate = Rate(settings.PINHOLE_SHARE_FEEDBACK_PER_HOUR, 3600)
    wait = limiter.hit("share-feedback", limiter.client_ip(request), rate)
    if wait:
        return too_many_json(wait)
    try:
        data = _uploaded_bytes(request)
        review.flag(row, request.POST.get("label", ""), data)
    except _Refused as exc:
        return bad(str(exc))
    except review.CannotReview as exc:
        return bad(f"{str(exc)[:1].upper()}{str(exc)[1:]}.")
    return JsonResponse({"detail": "Thank you: the project's owners will look at it."})
