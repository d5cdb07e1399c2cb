"""Pages of a project: list, create, overview (with data health), upload, label, and image derivatives.

Every view resolves its project through webui.projects.access, so strangers get 404 and viewers 403
on anything that changes data; the templates hide the controls viewers cannot use.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, OuterRef, Q, Subquery
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from webui.jobs.models import InvalidTransition
from webui.projects import imports
from webui.projects.access import get_in_project_for_user, get_project_for_user, projects_for
from webui.projects.forms import (
    LabelForm,
    MemberForm,
    ProjectForm,
    ProjectSettingsForm,
)
from webui.projects.health import data_health
from webui.projects.images import delete_project, derivative_response
from webui.projects.members import MembershipError, add_member, remove_member
from webui.projects.models import UNLABELED, Image, Label, Role, ZipImport
from webui.serving.models import SuggestionRefresh


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _back(request, project, default: str = "projects:label"):
    target = request.POST.get("next") or request.GET.get("next")
    if target and url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return redirect(target)
    return redirect(reverse(default, args=[project.pk]))


# --- projects -------------------------------------------------------------------------------------


@login_required
def project_list(request):
    first_image = Image.objects.filter(project=OuterRef("pk")).order_by("-created", "-id").values("pk")[:1]
    projects = (
        projects_for(request.user)
        .select_related("serving_version", "owner")
        .annotate(
            image_count=Count("images", distinct=True),
            label_count=Count("labels", distinct=True),
            unlabeled_count=Count(
                "images", filter=Q(images__label__isnull=True, images__labeled_at__isnull=True), distinct=True
            ),
            cover_id=Subquery(first_image),
        )
    )
    return render(request, "projects/list.html", {"projects": projects})


@login_required
def project_create(request):
    form = ProjectForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        with transaction.atomic():
            project = form.save(commit=False)
            project.owner = request.user
            project.save()
            for name in form.cleaned_data["labels"]:
                Label.objects.create(project=project, name=name)
        messages.success(request, f"Created “{project.name}”. Next: upload some pictures.")
        return redirect(project)
    return render(request, "projects/create.html", {"form": form})


@login_required
def project_detail(request, project_id):
    project = get_project_for_user(request.user, project_id)
    counts = project.images.aggregate(total=Count("id"), unlabeled=Count("id", filter=UNLABELED))
    context = {
        "project": project,
        "counts": counts,
        "health": data_health(project),
        "labels": list(project.labels.all()),  # the one-click fixes offer every label
        "versions": project.versions.all()[:5],
        "can_edit": project.can_edit(request.user),
        "tab": "overview",
    }
    return render(request, "projects/detail.html", context)


@login_required
@require_POST
def project_delete(request, project_id):
    project = get_project_for_user(request.user, project_id, owner_only=True)
    if request.POST.get("confirm_name", "").strip() != project.name:
        messages.error(request, "Type the project's name exactly to delete it.")
        return redirect(project)
    name = project.name
    delete_project(project)
    messages.success(request, f"Deleted “{name}” with its images and models.")
    return redirect("projects:list")


# --- settings and members ----------------------------------------------------------------------------


@login_required
def project_settings(request, project_id):
    """Name, description, backbone and auto-promote (editors); members and their roles (owner)."""
    project = get_project_for_user(request.user, project_id)
    form = ProjectSettingsForm(request.POST or None, instance=project)
    if request.method == "POST":
        project = get_project_for_user(request.user, project_id, write=True)
        form = ProjectSettingsForm(request.POST, instance=project)
        if form.is_valid():
            form.save()
            messages.success(request, "Settings saved.")
            return redirect("projects:settings", project.pk)
    context = {
        "project": project,
        "form": form,
        "member_form": MemberForm(),
        "memberships": project.memberships.select_related("user").order_by("user__username"),
        "can_edit": project.can_edit(request.user),
        "is_owner": project.user_role == Role.OWNER,
        "tab": "settings",
    }
    return render(request, "projects/settings.html", context)


@login_required
@require_POST
def member_add(request, project_id):
    project = get_project_for_user(request.user, project_id, owner_only=True)
    form = MemberForm(request.POST)
    if form.is_valid():
        try:
            member = add_member(project, form.cleaned_data["username"], form.cleaned_data["role"])
        except MembershipError as exc:
            messages.error(request, f"Not shared: {exc}.")
        else:
            messages.success(request, f"{member.user.get_username()} is now a {member.role} of this project.")
    else:
        messages.error(request, "Give a user name and a role.")
    return redirect("projects:settings", project.pk)


@login_required
@require_POST
def member_remove(request, project_id, membership_id):
    project = get_project_for_user(request.user, project_id, owner_only=True)
    name = remove_member(project, membership_id)
    if name is None:
        raise Http404("No such member of this project.")
    messages.success(request, f"{name} was removed from the project.")
    return redirect("projects:settings", project.pk)


# --- upload ---------------------------------------------------------------------------------------


@login_required
def upload(request, project_id):
    project = get_project_for_user(request.user, project_id)
    limits = imports.zip_limits()
    context = {
        "project": project,
        "can_edit": project.can_edit(request.user),
        "labels": project.labels.all(),
        "image_count": project.images.count(),
        "unlabeled_count": project.images.unlabeled().count(),
        "max_files": settings.PINHOLE_MAX_FILES_PER_REQUEST,
        "max_image_mb": settings.PINHOLE_MAX_IMAGE_MB,
        "zip_limits": limits,
        # Imports of the last day, so a reload (or a browser without JavaScript) sees how they went.
        "recent_imports": project.zip_imports.filter(created__gte=timezone.now() - timedelta(days=1))[:5],
        "tab": "upload",
    }
    return render(request, "projects/upload.html", context)


@login_required
@require_POST
def upload_zip(request, project_id):
    """Check and store an archive, then import it in the background (a ZipImport job)."""
    project = get_project_for_user(request.user, project_id, write=True)
    archive = request.FILES.get("archive")
    if archive is None:
        error = "choose a .zip file to import"
    else:
        try:
            job = imports.start_zip_import(project, request.user, archive)
        except imports.ZipRejected as exc:
            error = str(exc)
        else:
            if _wants_json(request):
                return JsonResponse(_import_status(project, job), status=202)
            messages.success(
                request,
                f"{job.name} is being imported in the background ({job.entries} pictures); "
                "this page shows how far it got.",
            )
            return redirect("projects:upload", project.pk)
    if _wants_json(request):
        return JsonResponse({"error": error}, status=400)
    messages.error(request, f"Zip not imported: {error}")
    return redirect("projects:upload", project.pk)


def _import_status(project, job) -> dict:
    return {
        **job.as_status(),
        "status_url": reverse("projects:zip-import", args=[project.pk, job.pk]),
        "cancel_url": reverse("projects:zip-import-cancel", args=[project.pk, job.pk]),
    }


@login_required
@require_GET
def zip_import(request, project_id, job_id):
    """How far a zip import got, for the upload page to poll."""
    project = get_project_for_user(request.user, project_id)
    job = get_object_or_404(ZipImport, project=project, pk=job_id)
    return JsonResponse(_import_status(project, job))


@login_required
@require_POST
def zip_import_cancel(request, project_id, job_id):
    """Stop an import: the pictures imported so far stay."""
    project = get_project_for_user(request.user, project_id, write=True)
    job = get_object_or_404(ZipImport, project=project, pk=job_id)
    try:
        job = imports.cancel_import(job)
    except InvalidTransition as exc:
        if _wants_json(request):
            return JsonResponse({"error": str(exc)}, status=409)
        messages.error(request, f"Not cancelled: {exc}.")
    else:
        if _wants_json(request):
            return JsonResponse(_import_status(project, job))
        messages.success(request, f"The import of {job.name} stops; the pictures imported so far stay.")
    return redirect("projects:upload", project.pk)


@login_required
@require_GET
def suggestion_refresh(request, project_id, job_id):
    """How far the serving version got in suggesting labels, for the label page to poll."""
    project = get_project_for_user(request.user, project_id)
    job = get_object_or_404(SuggestionRefresh, project=project, pk=job_id)
    return JsonResponse(job.as_status())


# --- labels ---------------------------------------------------------------------------------------


@login_required
@require_POST
def label_create(request, project_id):
    project = get_project_for_user(request.user, project_id, write=True)
    form = LabelForm(request.POST, project=project)
    if form.is_valid():
        created = form.save(commit=False)
        created.project = project
        created.save()
        messages.success(request, f"Added the label “{created.name}”.")
    else:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    return _back(request, project)


@login_required
@require_POST
def label_update(request, project_id, label_id):
    project = get_project_for_user(request.user, project_id, write=True)
    instance = get_in_project_for_user(request.user, project.labels.all(), label_id, write=True)
    old = instance.name
    form = LabelForm(request.POST, instance=instance, project=project)
    if form.is_valid():
        form.save()
        note = f"Renamed “{old}” to “{instance.name}”." if old != instance.name else f"Updated “{old}”."
        messages.success(request, note + " Models trained before keep the old name.")
    else:
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    return _back(request, project)


@login_required
@require_POST
def label_delete(request, project_id, label_id):
    project = get_project_for_user(request.user, project_id, write=True)
    instance = get_in_project_for_user(request.user, project.labels.all(), label_id, write=True)
    count = instance.images.count()
    name = instance.name
    instance.delete()  # its images become unlabeled (SET_NULL), they are not deleted
    messages.success(
        request, f"Deleted the label “{name}”; its {count} image{'s' if count != 1 else ''} are unlabeled."
    )
    return _back(request, project)


# --- image derivatives ----------------------------------------------------------------------------


def _derivative_response(request, project_id, image_id, kind: str):
    get_project_for_user(request.user, project_id)
    image = get_in_project_for_user(request.user, Image.objects.filter(project_id=project_id), image_id)
    return derivative_response(request, image, kind)


@login_required
@require_GET
def export_dataset(request, project_id):
    """The labelled photos as a zip (ImageFolder + labels.csv), streamed; `version`: only what that
    version learned from."""
    from webui.projects import export

    project = get_project_for_user(request.user, project_id)
    version = None
    if request.GET.get("version"):
        number = request.GET["version"]
        version = project.versions.filter(number=int(number) if number.isdigit() else -1).first()
        if version is None:
            raise Http404("no such version")
    return export.download(project, version)


@login_required
@require_GET
def image_thumb(request, project_id, image_id):
    return _derivative_response(request, project_id, image_id, "thumb")


@login_required
@require_GET
def image_full(request, project_id, image_id):
    return _derivative_response(request, project_id, image_id, "full")
