"""The review queue's pages: what waits, its photos, and a member's decision on each."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse, HttpResponseNotModified
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from classifier.errors import ClassifierError
from webui.projects.access import get_project_for_user
from webui.projects.images import derivative
from webui.serving import review
from webui.serving.models import PredictionRecord

log = logging.getLogger(__name__)

PAGE_SIZE = 24


@login_required
@require_GET
def queue_page(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    waiting = review.queue(project).select_related("version")
    page = Paginator(waiting, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "project": project,
        "page": page,
        "rows": list(page.object_list),
        "labels": list(project.labels.all()),
        "can_edit": project.can_edit(request.user),
        "waiting": page.paginator.count,
        "tab": "review",
    }
    return render(request, "serving/review.html", context)


@login_required
@require_POST
def decide(request, project_id: int, record_id: int):
    """`label`: what the photo shows (it becomes a labelled image); or `discard`."""
    project = get_project_for_user(request.user, project_id, write=True)
    row = get_object_or_404(PredictionRecord, pk=record_id, project=project)
    try:
        if "discard" in request.POST:
            review.discard(row, request.user)
            messages.success(request, "Discarded.")
        else:
            row = review.resolve(row, request.POST.get("label", ""), request.user)
            messages.success(
                request,
                f"Added to the project as “{row.image.label.name}”: the next training learns from it.",
            )
    except review.CannotReview as exc:
        messages.error(request, f"Nothing changed: {exc}.")
    return redirect(reverse("serving:review", args=[project.pk]))


@login_required
@require_GET
def photo(request, project_id: int, record_id: int):
    """A kept photo, re-encoded like every image the site shows."""
    project = get_project_for_user(request.user, project_id)
    row = get_object_or_404(PredictionRecord.objects.exclude(photo=""), pk=record_id, project=project)
    etag = f'"{row.sha256[:32]}-review"'
    if request.headers.get("If-None-Match") == etag:
        response = HttpResponseNotModified()
    else:
        try:
            data = derivative(row, "thumb", row.photo)
        except (ClassifierError, OSError):
            log.warning("kept photo %s cannot be shown", row.pk, exc_info=True)
            return HttpResponse("This photo cannot be shown.", status=404, content_type="text/plain")
        response = HttpResponse(data, content_type="image/jpeg")
        response["Content-Disposition"] = "inline"
    response["ETag"] = etag
    response["Cache-Control"] = "private, max-age=86400"
    response["X-Content-Type-Options"] = "nosniff"
    return response
