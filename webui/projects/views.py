from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.shortcuts import redirect, render

from webui.projects.access import get_project_for_user, projects_for
from webui.projects.forms import ProjectForm
from webui.projects.models import Label


@login_required
def project_list(request):
    projects = (
        projects_for(request.user)
        .select_related("serving_version", "owner")
        .annotate(
            image_count=Count("images", distinct=True),
            label_count=Count("labels", distinct=True),
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
        return redirect(project)
    return render(request, "projects/create.html", {"form": form})


@login_required
def project_detail(request, project_id):
    project = get_project_for_user(request.user, project_id)
    labels = project.labels.annotate(image_count=Count("images"))
    counts = project.images.aggregate(total=Count("id"), unlabeled=Count("id", filter=Q(label__isnull=True)))
    context = {
        "project": project,
        "labels": labels,
        "counts": counts,
        "versions": project.versions.all()[:10],
        "runs": project.runs.all()[:5],
        "can_edit": project.can_edit(request.user),
    }
    return render(request, "projects/detail.html", context)
