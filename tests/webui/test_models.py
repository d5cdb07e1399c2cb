"""Domain rules that hold whatever view or task touches the rows."""

import pytest
from django.db import IntegrityError, transaction

from webui.jobs.models import InvalidTransition, JobStatus
from webui.projects.models import Image, Label, Project, Role
from webui.serving.models import ShareLink, hash_token
from webui.training.models import ModelVersion, TrainingRun

pytestmark = pytest.mark.django_db


def _image(project, sha="a" * 64, **extra):
    return Image.objects.create(
        project=project,
        file=f"projects/{project.pk}/images/x.png",
        sha256=sha,
        width=1,
        height=1,
        format="PNG",
        **extra,
    )


def test_it_keeps_label_names_unique_per_project_ignoring_case(project, owner):
    Label.objects.create(project=project, name="Bees")
    with pytest.raises(IntegrityError), transaction.atomic():
        Label.objects.create(project=project, name="bees")
    other = Project.objects.create(name="Other", owner=owner)
    Label.objects.create(project=other, name="bees")  # another project may reuse the name


def test_it_gives_new_labels_distinct_colours_and_order(project):
    first = Label.objects.create(project=project, name="ants")
    second = Label.objects.create(project=project, name="bees")
    assert (first.order, second.order) == (0, 1)
    assert first.colour != second.colour


def test_it_stores_the_same_bytes_once_per_project(project, owner):
    _image(project)
    with pytest.raises(IntegrityError), transaction.atomic():
        _image(project)
    _image(Project.objects.create(name="Other", owner=owner))


def test_it_numbers_versions_uniquely_per_project(project, owner):
    ModelVersion.objects.create(project=project, number=1, artifact="a", backbone="b")
    with pytest.raises(IntegrityError), transaction.atomic():
        ModelVersion.objects.create(project=project, number=1, artifact="a2", backbone="b")
    ModelVersion.objects.create(
        project=Project.objects.create(name="O", owner=owner), number=1, artifact="c", backbone="b"
    )


def test_it_moves_a_run_through_its_allowed_states(project):
    run = TrainingRun.objects.create(project=project)
    run.transition(JobStatus.RUNNING)
    assert run.started_at is not None and run.heartbeat_at is not None
    run.transition(JobStatus.SUCCEEDED)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED and run.finished_at is not None


@pytest.mark.parametrize(
    ("start", "to"),
    [
        (JobStatus.QUEUED, JobStatus.SUCCEEDED),
        (JobStatus.SUCCEEDED, JobStatus.RUNNING),
        (JobStatus.FAILED, JobStatus.QUEUED),
        (JobStatus.CANCELLED, JobStatus.RUNNING),
    ],
)
def test_it_refuses_an_illegal_transition(project, start, to):
    run = TrainingRun.objects.create(project=project, status=start)
    with pytest.raises(InvalidTransition):
        run.transition(to)
    run.refresh_from_db()
    assert run.status == start


def test_it_lets_only_one_of_two_racing_claims_win(project):
    run = TrainingRun.objects.create(project=project)
    first, second = TrainingRun.objects.get(pk=run.pk), TrainingRun.objects.get(pk=run.pk)
    first.transition(JobStatus.RUNNING)
    with pytest.raises(InvalidTransition, match="is running"):
        second.transition(JobStatus.RUNNING)


def test_it_knows_each_members_role(project, owner, editor, viewer, stranger):
    assert project.role_for(owner) == Role.OWNER
    assert project.role_for(editor) == Role.EDITOR
    assert project.role_for(viewer) == Role.VIEWER
    assert project.role_for(stranger) is None
    assert project.can_edit(editor) and not project.can_edit(viewer)


def test_it_freezes_the_test_split_by_content_hash(project):
    auto = [_image(project, sha=f"{i:08x}" + "0" * 56) for i in range(50)]
    assert {img.is_test for img in auto} == {True, False}
    assert [img.is_test for img in auto] == [int(img.sha256[:8], 16) % 5 == 0 for img in auto]
    pinned = _image(project, sha="f" * 64, split="test")
    assert pinned.is_test


def test_it_stores_share_tokens_hashed_with_256_bits(project, owner):
    link, token = ShareLink.create_for(project, owner)
    assert len(token) >= 43  # 32 bytes, url-safe base64
    assert link.token_hash == hash_token(token) and token not in link.token_hash
    assert ShareLink.lookup(token) == link
    link.revoke()
    assert ShareLink.lookup(token) is None
    assert ShareLink.lookup("guess") is None
