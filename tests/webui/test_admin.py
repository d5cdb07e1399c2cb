"""The admin manages model versions with the same rules as the site: promote, roll back, delete, revoke."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse

from webui.serving.models import ShareLink
from webui.training.models import ModelVersion, ServingEvent, rollback

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client_for, make_user):
    return client_for(make_user("root", is_staff=True, is_superuser=True))


def _act(client, model: str, action: str, ids):
    url = reverse(f"admin:{model}_changelist")
    return client.post(url, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True)


def test_it_promotes_a_version_to_serving(admin_client, project, make_version):
    v1 = make_version(project, 1)
    response = _act(admin_client, "training_modelversion", "promote", [v1.pk])
    assert response.status_code == 200
    project.refresh_from_db()
    assert project.serving_version == v1
    assert ServingEvent.objects.filter(project=project, version=v1, action="promote").exists()


def test_it_refuses_to_promote_a_broken_artifact(admin_client, project, make_version):
    v1, v2 = make_version(project, 1), make_version(project, 2)
    v1.promote()
    path = next(p for p in v2.artifact_files() if p.endswith("model.onnx"))
    default_storage.delete(path)
    default_storage.save(path, ContentFile(b"truncated"))
    response = _act(admin_client, "training_modelversion", "promote", [v2.pk])
    assert b"Not promoted" in response.content
    project.refresh_from_db()
    assert project.serving_version == v1


def test_it_rolls_back_to_the_version_that_served_before(admin_client, project, make_version):
    v1, v2, v3 = (make_version(project, n) for n in (1, 2, 3))
    v1.promote()
    v3.promote()
    _act(admin_client, "training_modelversion", "roll_back", [v3.pk])
    project.refresh_from_db()
    assert project.serving_version == v1  # the one that served before v3, not v2
    assert v2.pk  # untouched


def test_it_has_nothing_to_roll_back_to_from_the_first_version(project, make_version):
    from webui.training.models import ArtifactInUse

    make_version(project, 1).promote()
    project.refresh_from_db()
    with pytest.raises(ArtifactInUse, match="first version"):
        rollback(project)


def test_it_deletes_only_versions_that_do_not_serve(
    admin_client, project, make_version, django_capture_on_commit_callbacks
):
    v1, v2 = make_version(project, 1), make_version(project, 2)
    v1.promote()
    files = v2.artifact_files()
    assert files
    with django_capture_on_commit_callbacks(execute=True):
        response = _act(admin_client, "training_modelversion", "delete_unserving", [v1.pk, v2.pk])
    assert b"is the serving version" in response.content
    assert list(ModelVersion.objects.filter(project=project)) == [v1]
    assert not any(default_storage.exists(path) for path in files)
    assert v1.artifact_files()


def test_it_revokes_share_links(admin_client, project, owner):
    link, token = ShareLink.create_for(project, owner)
    _act(admin_client, "serving_sharelink", "revoke", [link.pk])
    assert ShareLink.lookup(token) is None


def test_it_keeps_admin_actions_from_non_staff(client_for, owner, project, make_version):
    v1 = make_version(project, 1)
    response = _act(client_for(owner), "training_modelversion", "promote", [v1.pk])
    assert response.redirect_chain and "/admin/login/" in response.redirect_chain[-1][0]
    project.refresh_from_db()
    assert project.serving_version is None
