"""Who else works on a project, and in which role."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from webui.projects.models import Membership, Project


class MembershipError(Exception):
    """A membership change the owner asked for cannot be made; the message says why."""


def add_member(project: Project, username: str, role: str) -> Membership:
    """Share the project with an existing user (or change their role)."""
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise MembershipError(f"there is no user called {username.strip()!r}; an admin can create one")
    if user.pk == project.owner_id:
        raise MembershipError("the owner already has every right")
    membership, _created = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership


def remove_member(project: Project, membership_id: int) -> str | None:
    """Remove one membership of this project.

    Returns:
        The removed member's user name, or None when the project has no such membership.
    """
    membership = Membership.objects.filter(project=project, pk=membership_id).select_related("user").first()
    if membership is None:
        return None
    membership.delete()
    return membership.user.get_username()
