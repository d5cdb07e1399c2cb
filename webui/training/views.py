"""Pages for training a model and understanding, comparing and managing its versions."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from classifier.strategies import MIN_PER_LABEL_PARTIAL, STRATEGY_CHOICES
from webui.jobs.models import InvalidTransition, JobStatus
from webui.lib.numbers import percent
from webui.projects.access import get_project_for_user
from webui.projects.images import delete_image as remove_image
from webui.projects.labels import set_label, toggle_label
from webui.training import label_thresholds, thresholds
from webui.training.artifacts import ArtifactBroken
from webui.training.models import ArtifactInUse, ModelVersion, rollback
from webui.training.services import TrainingRefused, cancel, check_ready, start_training
from webui.training.workers import phase_message

log = logging.getLogger(__name__)

STRATEGY_HELP = {
    "auto": "Let Pinhole choose from how many images each label has and whether this server has a GPU.",
    "linear": (
        "Keep the pretrained network as it is and teach only its last step your labels: the fastest, "
        f"and what Pinhole picks on a server without a GPU, or below {MIN_PER_LABEL_PARTIAL} images per label."
    ),
    "partial": (
        "Also adjust the last few layers of the network to your images: minutes on a GPU, far longer "
        f"without one; Pinhole picks it on a GPU from {MIN_PER_LABEL_PARTIAL} images per label."
    ),
    "full": (
        "Retrain the whole network, starting from what it already knows: the slowest, for thousands "
        "of images and a GPU."
    ),
}
ACTIVE = (JobStatus.QUEUED, JobStatus.RUNNING)


def is_htmx(request) -> bool:
    return request.headers.get("HX-Request") == "true"


def version_or_404(project, number: int) -> ModelVersion:
    return get_object_or_404(ModelVersion, project=project, number=number)


# --- train ----------------------------------------------------------------------------------------


@login_required
def train(request, project_id: int):
    if request.method == "POST":
        project = get_project_for_user(request.user, project_id, write=True)
        params = {
            "backbone": request.POST.get("backbone") or None,
            "strategy": request.POST.get("strategy") or "auto",
        }
        try:
            run = start_training(project, request.user, params)
        except TrainingRefused as exc:
            messages.error(request, f"Training could not start: {exc}.")
        else:
            if getattr(run, "reused", False) and run.status == JobStatus.SUCCEEDED:
                messages.info(
                    request, "Nothing changed since the last training with these settings; here is its model."
                )
            elif getattr(run, "reused", False):
                messages.info(request, "A training with exactly these images and settings is already going.")
        return redirect("training:train", project_id=project.pk)

    from classifier.backbones import list_backbones

    project = get_project_for_user(request.user, project_id)
    labels = project.labels.annotate(n=Count("tagged_images" if project.multi_label else "images"))
    labels = labels.order_by("order", "name")
    unlabeled = project.images.unlabeled().count()
    try:
        check_ready(project)
        not_ready = ""
    except TrainingRefused as exc:
        not_ready = str(exc)
    run = project.runs.filter(status__in=ACTIVE).order_by("-created").first()
    last = None if run else project.runs.order_by("-created").first()
    backbones = list_backbones()
    default_backbone = project.backbone if any(b["name"] == project.backbone for b in backbones) else ""
    context = {
        "project": project,
        "can_edit": project.can_edit(request.user),
        "labels": labels,
        "unlabeled": unlabeled,
        "labelled": project.images.labelled().count(),
        "not_ready": not_ready,
        "run": run,
        "phase": phase_message(run) if run else "",
        "last": last,
        "last_phase": phase_message(last) if last else "",
        "last_version": _run_version(last),
        "backbones": backbones,
        "default_backbone": default_backbone,
        "strategies": [(name, STRATEGY_HELP[name]) for name in STRATEGY_CHOICES],
        "serving": project.serving_version,
    }
    return render(request, "training/train.html", context)


def _run_version(run) -> ModelVersion | None:
    if run is None or run.status != JobStatus.SUCCEEDED:
        return None
    return ModelVersion.objects.filter(run=run).first()


@login_required
@require_GET
def run_status(request, project_id: int, run_id: int):
    """The progress card, polled every second while the run is active (htmx swaps it in place)."""
    project = get_project_for_user(request.user, project_id)
    run = get_object_or_404(project.runs, pk=run_id)
    context = {
        "project": project,
        "run": run,
        "phase": phase_message(run),
        "version": _run_version(run),
        "can_edit": project.can_edit(request.user),
    }
    response = render(request, "training/_run.html", context)
    if run.is_final and is_htmx(request):
        # The run ended while the page polled: reload it so the Train button and data summary catch up.
        response["HX-Refresh"] = "true"
    return response


@login_required
@require_POST
def cancel_run(request, project_id: int, run_id: int):
    project = get_project_for_user(request.user, project_id, write=True)
    run = get_object_or_404(project.runs, pk=run_id)
    try:
        cancel(run)
    except InvalidTransition as exc:
        messages.error(request, str(exc).capitalize() + ".")
    else:
        messages.info(
            request, "Cancelled." if run.status == JobStatus.CANCELLED else "Stopping at the next step…"
        )
    return redirect("training:train", project_id=project.pk)


@login_required
@require_POST
def relabel(request, project_id: int, image_id: int):
    """Fix one image's label from a results page; htmx swaps the image's card for the answer."""
    project = get_project_for_user(request.user, project_id, write=True)
    images = project.images.filter(pk=image_id)
    image = get_object_or_404(images.select_related("label"))
    label_id = request.POST.get("label", "")
    label = None
    if label_id:
        try:
            label = project.labels.get(pk=int(label_id))
        except (ValueError, project.labels.model.DoesNotExist):
            raise Http404("No such label.") from None
    if project.multi_label:
        if label is None:
            raise Http404("No such label.")
        present = request.POST.get("present", "1") != "0"
        toggle_label(images, label, present)
        if is_htmx(request):
            done = {"label": label.name, "fix_label": label.pk, "fix_present": present}
            context = {"project": project, "image": image, "m": done, "done": True}
            return render(request, "training/_fix_label.html", context)
        messages.success(
            request, f"{'Added' if present else 'Took off'} {label.name} on {image}. Retrain to use it."
        )
        return redirect(_back_to(request, project))
    set_label(images, label)
    image.refresh_from_db()
    name = label.name if label else "no label"
    if is_htmx(request):
        return render(
            request,
            "training/_relabelled.html",
            {"project": project, "image": image, "label": label, "labels": list(project.labels.all())},
        )
    messages.success(request, f"Labelled {image} as {name}. Retrain to use it.")
    return redirect(_back_to(request, project))


@login_required
@require_POST
def delete_image(request, project_id: int, image_id: int):
    """Delete one image (a copy the audit found) from a results page; htmx swaps its card."""
    project = get_project_for_user(request.user, project_id, write=True)
    image = get_object_or_404(project.images.all(), pk=image_id)
    name = str(image)
    remove_image(image)
    if is_htmx(request):
        return render(request, "training/_deleted.html", {"name": name, "image_id": image_id})
    messages.success(request, f"Deleted {name}. Retrain to leave it out of the model.")
    return redirect(_back_to(request, project))


# --- versions -------------------------------------------------------------------------------------


@login_required
@require_GET
def versions(request, project_id: int):
    project = get_project_for_user(request.user, project_id)
    rows = list(project.versions.select_related("run").defer("learned").order_by("-number"))
    for version in rows:
        metrics = version.metrics or {}
        version.acc_pct = percent(version.score)
        version.bal_pct = percent(metrics.get("exact_match" if version.multi_label else "balanced_accuracy"))
    context = {
        "project": project,
        "versions": rows,
        "can_edit": project.can_edit(request.user),
        "can_rollback": project.serving_events.filter(action="promote").exists() and len(rows) > 1,
    }
    return render(request, "training/versions.html", context)


def _back_to(request, project) -> str:
    target = request.POST.get("next", "")
    prefix = f"/projects/{project.pk}/"
    return target if target.startswith(prefix) else reverse("training:versions", args=[project.pk])


@login_required
@require_POST
def promote(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id, write=True)
    version = version_or_404(project, number)
    try:
        version.promote(request.user)
    except ArtifactBroken as exc:
        messages.error(request, f"Not promoted: {exc}.")
    else:
        messages.success(request, f"v{version.number} now answers every prediction.")
    return redirect(_back_to(request, project))


@login_required
@require_POST
def threshold(request, project_id: int, number: int):
    """Save when a version answers (the results page's slider)."""
    project = get_project_for_user(request.user, project_id, write=True)
    version = version_or_404(project, number)
    if project.multi_label:
        # One field per label, named by its place in the version's labels: t0, t1, ...
        asked = {name: request.POST.get(f"t{j}") for j, name in enumerate(version.labels)}
        try:
            values = label_thresholds.parse_all(version, {k: v for k, v in asked.items() if v is not None})
        except thresholds.BadThreshold as exc:
            messages.error(request, f"Not saved: {exc}.")
        else:
            trained = label_thresholds.trained(version)
            # A slider left at the trained value keeps following the training's choice.
            values = {k: None if v is None or abs(v - trained[k]) < 0.005 else v for k, v in values.items()}
            changed = label_thresholds.set_label_thresholds(version, values, request.user)
            messages.success(
                request, f"v{version.number} serves with these thresholds." if changed else "Nothing changed."
            )
        return redirect(reverse("training:version", args=[project.pk, version.number]) + "#threshold")
    try:
        value = thresholds.parse(request.POST.get("threshold"))
    except thresholds.BadThreshold as exc:
        messages.error(request, f"Not saved: {exc}.")
    else:
        changed = thresholds.set_threshold(version, value, request.user)
        said = thresholds.describe(value)
        messages.success(
            request,
            f"v{version.number} will {said}." if changed else f"v{version.number} already does: {said}.",
        )
    return redirect(reverse("training:version", args=[project.pk, version.number]) + "#threshold")


@login_required
@require_POST
def rollback_view(request, project_id: int):
    project = get_project_for_user(request.user, project_id, write=True)
    try:
        target = rollback(project, request.user)
    except (ArtifactInUse, ArtifactBroken) as exc:
        messages.error(request, f"Nothing rolled back: {exc}.")
    else:
        messages.success(request, f"Rolled back: v{target.number} serves again.")
    return redirect(_back_to(request, project))


@login_required
@require_POST
def delete_version(request, project_id: int, number: int):
    project = get_project_for_user(request.user, project_id, write=True)
    version = version_or_404(project, number)
    try:
        version.delete()  # its artifact and its loaded model go with it
    except ArtifactInUse as exc:
        messages.error(request, f"Not deleted: {exc}.")
    else:
        messages.success(request, f"Deleted v{number}.")
    return redirect("training:versions", project_id=project.pk)
