"""The one place that decides who may see or change a project.

Every page and API call that takes a project (or an object inside one) resolves it through these
helpers, so a stranger gets the same 404 everywhere and cannot even learn that an id exists.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.http import Http404

from webui.projects.models import Project, Role


def projects_for(user) -> QuerySet[Project]:
    """Projects the user owns or is a member of."""
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(Q(owner=user) | Q(memberships__user=user)).distinct()


def get_project_for_user(user, project_id, *, write: bool = False, owner_only: bool = False) -> Project:
    """The project if the user may see it, else 404; 403 if they may see but not change it."""
    try:
        project = projects_for(user).get(pk=project_id)
    except (Project.DoesNotExist, ValueError, TypeError):
        raise Http404("No such project.") from None
    role = project.role_for(user)
    if owner_only and role != Role.OWNER:
        raise PermissionDenied("Only the project's owner can do this.")
    if write and role not in (Role.OWNER, Role.EDITOR):
        raise PermissionDenied("Viewers can look but not change this project.")
    project.user_role = role
    return project


def get_in_project_for_user(user, queryset: QuerySet, object_id, *, write: bool = False):
    """An object that belongs to a project (image, run, version, ...) with the project's access rules."""
    try:
        obj = queryset.select_related("project").get(pk=object_id)
    except (queryset.model.DoesNotExist, ValueError, TypeError):
        raise Http404("Not found.") from None
    get_project_for_user(user, obj.project_id, write=write)
    return obj
