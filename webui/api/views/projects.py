"""Projects and their labels."""

from __future__ import annotations

import logging

from django.db import IntegrityError, transaction
from django.db.models import Count
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from webui.api.errors import BadRequest
from webui.api.serializers import (
    LabelSerializer,
    ProjectCreateSerializer,
    ProjectSerializer,
    ProjectUpdateSerializer,
    with_stats,
)
from webui.api.views.base import READ_ERRORS, WRITE_ERRORS, ApiView
from webui.projects.access import get_in_project_for_user, get_project_for_user, projects_for
from webui.projects.images import delete_project
from webui.projects.labels import get_or_create_label
from webui.projects.models import Label, Project

log = logging.getLogger(__name__)


def project_json(project: Project, user) -> dict:
    return ProjectSerializer(with_stats(Project.objects.filter(pk=project.pk), user).get()).data


class ProjectList(ApiView):
    @extend_schema(responses={200: ProjectSerializer(many=True), **READ_ERRORS}, summary="Your projects")
    def get(self, request):
        projects = with_stats(projects_for(request.user), request.user)
        return Response(ProjectSerializer(projects, many=True).data)

    @extend_schema(
        request=ProjectCreateSerializer,
        responses={201: ProjectSerializer, **WRITE_ERRORS},
        summary="Create a project (you become its owner)",
    )
    def post(self, request):
        form = ProjectCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        values = dict(form.validated_data)
        names = values.pop("labels")
        with transaction.atomic():
            project = Project.objects.create(owner=request.user, **values)
            for name in names:
                try:
                    get_or_create_label(project, name)
                except ValueError as exc:
                    raise BadRequest(f"labels: {exc}") from None
        return Response(project_json(project, request.user), status=status.HTTP_201_CREATED)


class ProjectDetail(ApiView):
    @extend_schema(responses={200: ProjectSerializer, **READ_ERRORS})
    def get(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id)
        return Response(project_json(project, request.user))

    @extend_schema(
        request=ProjectUpdateSerializer,
        responses={200: ProjectSerializer, **WRITE_ERRORS},
        summary="Change name, description, backbone or auto-promote (editors and owners)",
    )
    def patch(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id, write=True)
        form = ProjectUpdateSerializer(project, data=request.data, partial=True)
        form.is_valid(raise_exception=True)
        form.save()
        return Response(project_json(project, request.user))

    @extend_schema(responses={204: None, **WRITE_ERRORS}, summary="Delete the project (owner only)")
    def delete(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id, owner_only=True)
        delete_project(project)
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- labels ---------------------------------------------------------------------------------------


class LabelList(ApiView):
    @extend_schema(responses={200: LabelSerializer(many=True), **READ_ERRORS})
    def get(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id)
        labels = project.labels.annotate(n_images=Count("images"))
        return Response(LabelSerializer(labels, many=True).data)

    @extend_schema(request=LabelSerializer, responses={201: LabelSerializer, **WRITE_ERRORS})
    def post(self, request, project_id: int):
        project = get_project_for_user(request.user, project_id, write=True)
        form = LabelSerializer(data=request.data, context={"project": project})
        form.is_valid(raise_exception=True)
        label = _save_label(form, project=project)
        return Response(LabelSerializer(label).data, status=status.HTTP_201_CREATED)


class LabelDetail(ApiView):
    @extend_schema(responses={200: LabelSerializer, **READ_ERRORS})
    def get(self, request, label_id: int):
        label = get_in_project_for_user(request.user, Label.objects.all(), label_id)
        return Response(LabelSerializer(label).data)

    @extend_schema(request=LabelSerializer, responses={200: LabelSerializer, **WRITE_ERRORS})
    def patch(self, request, label_id: int):
        label = get_in_project_for_user(request.user, Label.objects.all(), label_id, write=True)
        form = LabelSerializer(label, data=request.data, partial=True, context={"project": label.project})
        form.is_valid(raise_exception=True)
        return Response(LabelSerializer(_save_label(form)).data)

    @extend_schema(
        responses={204: None, **WRITE_ERRORS}, summary="Delete a label; its images become unlabeled"
    )
    def delete(self, request, label_id: int):
        label = get_in_project_for_user(request.user, Label.objects.all(), label_id, write=True)
        label.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


def _save_label(form: LabelSerializer, **extra) -> Label:
    try:
        with transaction.atomic():
            return form.save(**extra)
    except IntegrityError:
        # A concurrent request created the same name between the check and the insert.
        raise BadRequest("name: this project already has a label with that name") from None
