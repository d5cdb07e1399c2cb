"""The review queue's pages: what waits, its photos, and a member's decision on each."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from webui.projects.access import get_project_for_user
from webui.projects.images import derivative_response
from webui.serving import review
from webui.serving.models import PredictionRecord

PAGE_SIZE = 24


@login_required
@require_GET
def queue_page(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    waiting = review.queue(project).select_related("version")
    page = Paginator(waiting, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    for row in rows:  # multi-label: the labels the model said are there, ticked to start with
        row.said = [name for name in row.label.split(", ") if name]
    context = {
        "project": project,
        "page": page,
        "rows": rows,
        "labels": list(project.labels.all()),
        "can_edit": project.can_edit(request.user),
        "waiting": page.paginator.count,
        "tab": "review",
    }
    return render(request, "serving/review.html", context)


@login_required
@require_POST
def decide(request, project_id: int, record_id: int):
    """`label`: what the photo shows (it becomes a labelled image); multi-label projects: `labels` (any
    number of them) or `none`; or `discard`."""
    project = get_project_for_user(request.user, project_id, write=True)
    row = get_object_or_404(PredictionRecord, pk=record_id, project=project)
    try:
        if "discard" in request.POST:
            review.discard(row, request.user)
            messages.success(request, "Discarded.")
        elif project.multi_label:
            names = [] if "none" in request.POST else request.POST.getlist("labels")
            row = review.resolve_set(row, names, request.user)
            messages.success(
                request,
                f"Added to the project as “{row.image.label_text}”: the next training learns from it.",
            )
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
    return derivative_response(request, row, "thumb", row.photo)
