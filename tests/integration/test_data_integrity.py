"""Enqueue after commit, no half-written version, SQLite under concurrent writers (rows 19, 21, 23)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest
from itest import BLUE, RED, REPO, database_url, is_sqlite, png

pytestmark = [pytest.mark.integration]


@pytest.fixture
def small_project(django_user_model, data_dir):
    """A project with 'red' and 'blue', six generated images each, made through the services.

    Tests ask for `db` or `transactional_db` themselves, before this fixture.
    """
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import ingest_image
    from webui.projects.labels import get_or_create_label
    from webui.projects.models import Project

    owner = django_user_model.objects.create_user(username="olga", password="pw-olga")
    project = Project.objects.create(name="Integrity", owner=owner)
    for name, colour, base in (("red", RED, 0), ("blue", BLUE, 100)):
        label = get_or_create_label(project, name)
        for i in range(6):
            upload = SimpleUploadedFile(f"{name}{i}.png", png(colour, base + i), content_type="image/png")
            ingest_image(project, owner, upload, label=label)
    return project


class _Rollback(Exception):
    pass


@pytest.mark.timeout(60)
def test_it_never_enqueues_a_run_whose_transaction_rolls_back(
    db, small_project, monkeypatch, django_capture_on_commit_callbacks
):
    from django.db import transaction

    from webui.training import services
    from webui.training.models import TrainingRun
    from webui.training.tasks import train

    sent = []
    monkeypatch.setattr(train, "delay", lambda *args, **kwargs: sent.append(args))

    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(_Rollback),
        transaction.atomic(),
    ):
        services.start_training(small_project, small_project.owner, {"strategy": "linear"})
        raise _Rollback
    assert callbacks == [] and sent == []
    assert not TrainingRun.objects.exists()

    # The same call that commits sends exactly one task, after the commit.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        run = services.start_training(small_project, small_project.owner, {"strategy": "linear"})
    assert len(callbacks) == 1 and sent == [(run.pk,)]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_it_leaves_no_version_when_a_storage_write_fails(
    transactional_db, small_project, monkeypatch, data_dir
):
    from django.core.files.storage import FileSystemStorage

    from webui.jobs.models import JobStatus
    from webui.training import services
    from webui.training.models import ModelVersion

    run = services.start_training(small_project, small_project.owner, {"strategy": "linear"})
    real_save = FileSystemStorage.save
    saved = []

    def save(self, name, content, max_length=None):
        if "/versions/" in name and saved:
            raise OSError(28, "No space left on device")
        result = real_save(self, name, content, max_length=max_length)
        if "/versions/" in name:
            saved.append(result)
        return result

    monkeypatch.setattr(FileSystemStorage, "save", save)
    services.run_training(run.pk)

    run.refresh_from_db()
    assert saved, "the failure was meant to come after one artifact file was written"
    assert run.status == JobStatus.FAILED and "No space left on device" in run.error
    assert not ModelVersion.objects.exists()
    versions = data_dir / "media" / "projects" / str(small_project.pk) / "versions"
    assert [p for p in versions.rglob("*") if p.is_file()] == []


WRITER = """
import os, sys, django
django.setup()
from django.db import transaction
from webui.training.models import TrainingRun
run_id = int(sys.argv[1])
for i in range(50):
    with transaction.atomic():
        n = TrainingRun.objects.filter(pk=run_id).count()
        TrainingRun.objects.filter(pk=run_id).update(message=f"worker write {i} saw {n}")
"""


@pytest.mark.timeout(120)
@pytest.mark.skipif(not is_sqlite(), reason="embedded SQLite only: this configuration runs on PostgreSQL")
def test_it_never_reports_database_is_locked_under_concurrent_writers(transactional_db, small_project):
    from django.db import connection, transaction

    from webui.training.models import TrainingRun

    target = TrainingRun.objects.create(project=small_project)
    worker = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(target.pk)],
        cwd=REPO,
        env={**os.environ, "DATABASE_URL": database_url(), "DJANGO_SETTINGS_MODULE": "webui.settings"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    errors = []

    def web(thread: int) -> None:
        try:
            for i in range(50):
                # Read, then write, in one transaction: the pattern that fails at once with
                # "database is locked" when a deferred transaction cannot upgrade its lock.
                with transaction.atomic():
                    n = TrainingRun.objects.filter(project=small_project).count()
                    TrainingRun.objects.create(project=small_project, message=f"web {thread}-{i} saw {n}")
        except Exception as exc:  # collected and asserted below
            errors.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=web, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=100)
    output, _ = worker.communicate(timeout=100)

    assert errors == []
    assert worker.returncode == 0, output
    assert "locked" not in output
    assert TrainingRun.objects.filter(project=small_project).count() == 1 + 4 * 50
