"""The admin uses the same model methods and services as the site: promote, roll back, delete, revoke."""

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import reverse
from django.utils import timezone

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
    # Sent to sign in as someone who may (through the site's sign-in page, which limits wrong passwords).
    assert [url.split("?")[0] for url, _ in response.redirect_chain] == ["/admin/login/", "/accounts/login/"]
    assert "Your account cannot see that page" in response.content.decode()
    project.refresh_from_db()
    assert project.serving_version is None


# --- the admin goes through the site's model methods and services ---------------------------------


@pytest.fixture
def stored_image(project, media_root, editor, image_bytes, upload):
    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label

    label = get_or_create_label(project, "ants")
    return ingest_image(project, editor, upload("a.png", image_bytes()), label=label).image


def _cached(version) -> bool:
    from webui.serving import services

    return any(key[0] == version.pk for key in services._cache)


def _load(version) -> None:
    from webui.serving import services

    # A stand-in for a loaded Predictor: eviction only looks at the key.
    services._cache[(version.pk, version.artifact)] = object()


def _project_form(project, **changes) -> dict:
    data = {"name": project.name, "description": "", "owner": project.owner_id}
    data.update({"task_type": project.task_type, "backbone": project.backbone, "auto_promote": "on"})
    data.update({"keep_member_photos": "on", "keep_photos_days": project.keep_photos_days})
    for prefix in ("memberships", "labels"):
        data.update({f"{prefix}-TOTAL_FORMS": "0", f"{prefix}-INITIAL_FORMS": "0"})
    data.update(changes)
    return data


def test_it_keeps_the_serving_version_out_of_the_project_form(admin_client, project, make_version):
    v1 = make_version(project, 1)
    url = reverse("admin:projects_project_change", args=[project.pk])
    page = admin_client.get(url)
    assert "serving_version" not in page.context["adminform"].form.fields
    response = admin_client.post(url, _project_form(project, name="Renamed", serving_version=v1.pk))
    assert response.status_code == 302
    project.refresh_from_db()
    assert project.name == "Renamed"
    assert project.serving_version is None  # promotion happens only through ModelVersion.promote()
    assert not ServingEvent.objects.filter(project=project).exists()


def test_it_deletes_a_serving_project_and_its_files(
    admin_client, project, make_version, stored_image, django_capture_on_commit_callbacks
):
    from django.core.files.base import ContentFile

    from webui.projects.models import Project

    v1 = make_version(project, 1)
    v1.promote()
    _load(v1)
    exported = default_storage.save(f"projects/{project.pk}/exports/v1-onnx-1.zip", ContentFile(b"zip"))
    v1.exports.create(format="onnx", status="succeeded", file=exported, size=3)
    files = [stored_image.file.name, *v1.artifact_files(), exported]
    assert all(default_storage.exists(name) for name in files)
    url = reverse("admin:projects_project_delete", args=[project.pk])
    page = admin_client.get(url)
    assert not page.context["protected"]  # its own serving version does not block the delete
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assert not Project.objects.filter(pk=project.pk).exists()
    assert not any(default_storage.exists(name) for name in files)
    assert not _cached(v1)


def test_it_bulk_deletes_projects_through_the_service(
    admin_client, project, owner, make_version, stored_image, django_capture_on_commit_callbacks
):
    from webui.projects.models import Project

    other = Project.objects.create(name="Wasps", owner=owner)
    make_version(other, 1).promote()
    make_version(project, 1).promote()
    files = [
        stored_image.file.name,
        *(v.artifact_files()[0] for v in (other.versions.get(), project.versions.get())),
    ]
    url = reverse("admin:projects_project_changelist")
    ids = [str(project.pk), str(other.pk)]
    confirm = admin_client.post(url, {"action": "delete_selected", "_selected_action": ids})
    assert not confirm.context["protected"]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert not Project.objects.exists()
    assert not any(default_storage.exists(name) for name in files)


def test_it_deletes_images_and_their_files(admin_client, stored_image, django_capture_on_commit_callbacks):
    from webui.projects.models import Image

    name = stored_image.file.name
    url = reverse("admin:projects_image_delete", args=[stored_image.pk])
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"post": "yes"})
    assert not Image.objects.filter(pk=stored_image.pk).exists()
    assert not default_storage.exists(name)


def test_it_bulk_deletes_images_and_their_files(
    admin_client, project, editor, stored_image, image_bytes, upload, django_capture_on_commit_callbacks
):
    from webui.projects.ingest import ingest_image
    from webui.projects.models import Image

    second = ingest_image(project, editor, upload("b.png", image_bytes(seed=1))).image
    names = [stored_image.file.name, second.file.name]
    url = reverse("admin:projects_image_changelist")
    ids = [str(stored_image.pk), str(second.pk)]
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url, {"action": "delete_selected", "_selected_action": ids, "post": "yes"})
    assert not Image.objects.exists()
    assert not any(default_storage.exists(name) for name in names)


def test_it_relabels_an_image_only_within_its_project(admin_client, project, owner, stored_image):
    from webui.projects.labels import get_or_create_label
    from webui.projects.models import Project

    bees = get_or_create_label(project, "bees")
    other = Project.objects.create(name="Wasps", owner=owner)
    foreign = get_or_create_label(other, "wasps")
    url = reverse("admin:projects_image_change", args=[stored_image.pk])
    form = admin_client.get(url).context["adminform"].form
    assert "project" not in form.fields
    assert set(form.fields["label"].queryset) == {stored_image.label, bees}

    refused = admin_client.post(url, {"original_name": "a.png", "label": foreign.pk, "split": "auto"})
    assert refused.status_code == 200 and refused.context["adminform"].form.errors
    stored_image.refresh_from_db()
    assert stored_image.label.name == "ants"

    moved = admin_client.post(
        url, {"original_name": "a.png", "label": bees.pk, "split": "auto", "project": other.pk}
    )
    assert moved.status_code == 302
    stored_image.refresh_from_db()
    assert (stored_image.label, stored_image.project) == (bees, project)
    assert stored_image.labeled_at is not None


def test_it_keeps_a_label_in_its_project(admin_client, project, owner):
    from webui.projects.labels import get_or_create_label
    from webui.projects.models import Project

    label = get_or_create_label(project, "ants")
    other = Project.objects.create(name="Wasps", owner=owner)
    url = reverse("admin:projects_label_change", args=[label.pk])
    admin_client.post(url, {"name": "ants", "colour": label.colour, "order": 0, "project": other.pk})
    label.refresh_from_db()
    assert label.project == project


def test_it_evicts_a_deleted_version(admin_client, project, make_version, django_capture_on_commit_callbacks):
    v1, v2 = make_version(project, 1), make_version(project, 2)
    v1.promote()
    _load(v2)
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse("admin:training_modelversion_delete", args=[v2.pk]), {"post": "yes"})
    assert not ModelVersion.objects.filter(pk=v2.pk).exists()
    assert not _cached(v2)

    v3 = make_version(project, 3)
    _load(v3)
    _act(admin_client, "training_modelversion", "delete_unserving", [v3.pk])
    assert not _cached(v3)


def test_it_revokes_a_link_as_the_site_does(admin_client, project, owner, make_version):
    v1 = make_version(project, 1)
    v1.promote()
    project.refresh_from_db()
    link, _token = ShareLink.create_for(project, owner)
    _load(v1)
    _act(admin_client, "serving_sharelink", "revoke", [link.pk])
    link.refresh_from_db()
    assert not link.enabled and link.revoked_at
    assert not _cached(v1)


def test_it_cannot_switch_a_revoked_link_back_on(admin_client, project, owner, make_version):
    v1 = make_version(project, 1)
    link, token = ShareLink.create_for(project, owner)
    link.revoke()
    url = reverse("admin:serving_sharelink_change", args=[link.pk])
    form = admin_client.get(url).context["adminform"].form
    assert "enabled" not in form.fields and "version" not in form.fields
    admin_client.post(url, {"enabled": "on", "version": v1.pk, "expires_at_0": "", "expires_at_1": ""})
    link.refresh_from_db()
    assert (link.enabled, link.version) == (False, None)
    assert ShareLink.lookup(token) is None


def test_it_shows_serving_events_read_only(admin_client, project, make_version):
    v1 = make_version(project, 1)
    v1.promote()
    event = ServingEvent.objects.get(project=project)
    changelist = admin_client.get(reverse("admin:training_servingevent_changelist"))
    assert changelist.status_code == 200
    assert changelist.context["action_form"] is None  # no bulk delete
    _act(admin_client, "training_servingevent", "delete_selected", [event.pk])
    assert admin_client.get(reverse("admin:training_servingevent_add")).status_code == 403
    change = reverse("admin:training_servingevent_change", args=[event.pk])
    assert admin_client.get(change).status_code == 200
    assert admin_client.post(change, {"action": "rollback"}).status_code == 403
    delete = reverse("admin:training_servingevent_delete", args=[event.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    event.refresh_from_db()
    assert event.action == "promote"


def test_it_shows_batch_predictions_read_only(admin_client, project, make_version):
    from webui.serving.models import BatchPrediction

    batch = BatchPrediction.objects.create(
        project=project, version=make_version(project, 1), results=[{}] * 3
    )
    assert admin_client.get(reverse("admin:serving_batchprediction_changelist")).status_code == 200
    change = reverse("admin:serving_batchprediction_change", args=[batch.pk])
    page = admin_client.get(change)
    assert page.status_code == 200 and not page.context["adminform"].form.fields
    assert admin_client.post(change, {"status": "succeeded"}).status_code == 403
    assert admin_client.get(reverse("admin:serving_batchprediction_add")).status_code == 403


@pytest.mark.parametrize(
    "admin_name",
    ["projects_zipimport", "serving_suggestionrefresh", "serving_batchprediction", "training_trainingrun"],
)
def test_every_kind_of_job_is_listed_read_only_and_can_be_cancelled(
    admin_client, project, make_version, admin_name
):
    from django.apps import apps

    app_label, model_name = admin_name.split("_", 1)
    model = apps.get_model(app_label, model_name)
    extra = {"archive": "x.zip", "name": "x.zip"} if model_name == "zipimport" else {}
    if model_name in ("suggestionrefresh", "batchprediction"):
        extra["version"] = make_version(project, 1)
    queued = model.objects.create(project=project, **extra)
    running = model.objects.create(project=project, status="running", heartbeat_at=timezone.now(), **extra)
    changelist = reverse(f"admin:{admin_name}_changelist")
    assert admin_client.get(changelist).status_code == 200
    page = admin_client.get(reverse(f"admin:{admin_name}_change", args=[queued.pk]))
    assert page.status_code == 200 and not page.context["adminform"].form.fields
    response = admin_client.post(
        changelist, {"action": "cancel", "_selected_action": [queued.pk, running.pk]}, follow=True
    )
    assert "Cancelled or asked to stop: 2." in response.content.decode()
    queued.refresh_from_db()
    running.refresh_from_db()
    assert queued.status == "cancelled" and running.cancel_requested and running.status == "running"


def test_it_offers_only_known_backbones_for_a_project(admin_client, project):
    url = reverse("admin:projects_project_change", args=[project.pk])
    choices = dict(admin_client.get(url).context["adminform"].form.fields["backbone"].choices)
    assert "efficientnet_lite0" in choices
    response = admin_client.post(url, _project_form(project, backbone="efficientnet_typo"))
    assert response.status_code == 200  # the form again, with the error
    assert "efficientnet_typo is not one of the available choices" in response.content.decode()
    project.refresh_from_db()
    assert project.backbone == "efficientnet_lite0"


def test_versions_show_accuracy_as_a_percentage_and_serving_ones_offer_no_delete(
    admin_client, project, make_version
):
    v1, v2 = make_version(project, 1, accuracy=0.9649122807), make_version(project, 2)
    v1.promote()
    listing = admin_client.get(reverse("admin:training_modelversion_changelist")).content.decode()
    # The same whole percent as every page of the site shows.
    assert "96%" in listing and "0.9649" not in listing and "96.5%" not in listing
    serving_page = admin_client.get(reverse("admin:training_modelversion_change", args=[v1.pk]))
    delete_url = reverse("admin:training_modelversion_delete", args=[v1.pk])
    assert serving_page.status_code == 200 and delete_url not in serving_page.content.decode()
    assert "accuracy 96%" in serving_page.content.decode()
    refused = admin_client.get(delete_url, follow=True).content.decode()
    assert "serves predictions: promote another version first" in refused
    assert ModelVersion.objects.filter(pk=v1.pk).exists()
    other = admin_client.get(reverse("admin:training_modelversion_change", args=[v2.pk])).content.decode()
    assert reverse("admin:training_modelversion_delete", args=[v2.pk]) in other
