"""Real Celery workers, brokers and databases for the fault tests.

How a worker subprocess sees the test's data
--------------------------------------------
pytest-django normally wraps each test in a transaction (invisible to another process) and, on
SQLite, uses an in-memory test database (invisible to another process). So:

* Tests that start a worker use `transactional_db`: every write is committed.
* The worker gets DATABASE_URL pointing at the *test* database: on PostgreSQL the name pytest-django
  created (`test_<name>`), on SQLite a file. On SQLite this conftest sets
  DATABASES["default"]["TEST"]["NAME"] to a file in a temporary directory when it is imported, i.e.
  during collection, before pytest-django creates the test database at the first test that needs
  one. That makes the whole session (not only these tests) use a file-backed SQLite test database
  whenever tests/integration is collected; it behaves like the in-memory one, only on disk, with
  the same WAL / IMMEDIATE options the app uses in production.
* Files: the test points default storage at `<tmp>/data/media` and gives the worker
  PINHOLE_DATA_DIR=<tmp>/data, so both resolve image and artifact keys to the same files.
* Broker: the test process's Celery app is re-pointed (`use_broker`) at the broker the worker
  consumes from: a fresh kombu SQLAlchemy broker file per test, or the Redis database named by
  PINHOLE_TEST_REDIS_URL, which is flushed before each worker starts (stale messages from an earlier
  run would otherwise name run ids that exist again in a fresh test database).

Every worker is started with `--include worker_hooks` (test-only faults, see worker_hooks.py) and is
killed, with its pool children, in teardown even when the test fails.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from django.conf import settings as django_settings

sys.path.insert(0, str(Path(__file__).resolve().parent))

from itest import (  # noqa: E402
    BLUE,
    HERE,
    RED,
    Worker,
    configured_broker,
    database_url,
    flush_redis,
    missing_service,
    png,
    redis_ping,
    redis_url,
)
from object_store import ObjectStore  # noqa: E402


def _use_a_file_for_the_sqlite_test_database() -> None:
    from django.db import connections

    database = connections["default"].settings_dict
    if database["ENGINE"] != "django.db.backends.sqlite3":
        return
    folder = tempfile.mkdtemp(prefix="pinhole-itest-db-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    database.setdefault("TEST", {})["NAME"] = str(Path(folder) / "test.sqlite3")


_use_a_file_for_the_sqlite_test_database()


@pytest.fixture(params=["redis", "sqla"])
def any_broker(request, tmp_path):
    """Each test using this runs on Redis and on the embedded SQLite broker."""
    return _broker(request.param, tmp_path)


@pytest.fixture
def broker(tmp_path):
    """The broker of this configuration (Redis on the PostgreSQL run, the SQLite broker otherwise)."""
    return _broker(configured_broker(), tmp_path)


@pytest.fixture
def redis_broker(tmp_path):
    return _broker("redis", tmp_path)


def _broker(kind: str, tmp_path: Path) -> str:
    if kind == "sqla":
        return f"sqla+sqlite:///{tmp_path / 'broker.sqlite3'}"
    url = redis_url()
    if not redis_ping(url):
        missing_service(f"Redis does not answer at {url}")
    return url


def _reset_producer_pool(app) -> None:
    # The app (and kombu's global pool registry) keep connections to the broker first published to;
    # drop them all so the next publish connects to the broker configured now.
    from kombu import pools

    pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.__dict__["amqp"]._producer_pool = None


@pytest.fixture
def use_broker(monkeypatch):
    """Point this process's Celery app (what `train.delay` publishes to) at a broker."""
    from webui.celery import app

    saved = (app.conf.broker_url, dict(app.conf.broker_transport_options or {}))

    def use(url: str, visibility_timeout: int | None = None) -> None:
        from django.conf import settings

        # Celery reads CELERY_BROKER_URL from the environment before its own configuration.
        monkeypatch.setenv("CELERY_BROKER_URL", url)
        app.conf.broker_url = url
        # As webui/celery.py: only Redis takes a visibility timeout (the SQLAlchemy transport refuses it).
        visibility = visibility_timeout or settings.PINHOLE_BROKER_VISIBILITY_TIMEOUT
        app.conf.broker_transport_options = (
            {"visibility_timeout": visibility} if url.startswith("redis") else {}
        )
        _reset_producer_pool(app)

    yield use
    app.conf.broker_url, app.conf.broker_transport_options = saved
    _reset_producer_pool(app)


@pytest.fixture
def data_dir(settings, tmp_path):
    """A data directory shared by this process (its storage) and the worker (PINHOLE_DATA_DIR)."""
    data = tmp_path / "data"
    (data / "media").mkdir(parents=True)
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(data / "media")},
        },
    }
    return data


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """One S3-compatible server for the session (object_store.py: moto's, unless one is named)."""
    store = ObjectStore(tmp_path_factory.mktemp("s3") / "server.log")
    yield store
    store.stop()


@pytest.fixture
def object_store(settings, s3_server, data_dir):
    """This process (the web host) keeps its files in a fresh bucket; `.env` gives a worker the same.

    The local media directory stays, empty: a test can check that nothing lands there.
    """
    from types import SimpleNamespace

    from webui.lib.env import storages_config

    bucket = s3_server.new_bucket()
    env = s3_server.env(bucket)
    settings.STORAGES = storages_config(env, data_dir / "media")
    return SimpleNamespace(
        bucket=bucket, env=env, server=s3_server, keys=lambda prefix="": s3_server.keys(bucket, prefix)
    )


@pytest.fixture
def start_worker(tmp_path, data_dir, use_broker, transactional_db):
    """start_worker(broker_url, concurrency=1, **env) -> a ready Worker; all are killed in teardown.

    It asks for the database first so that its teardown (killing the workers) comes before the
    database is emptied: a worker still alive then could write a row the next test would see.

    The worker shares the test database and data directory, uses a 3 s stale-heartbeat window, and
    has its own TMPDIR so a test can check that training temp files are gone.
    """
    workers: list[Worker] = []
    tmpdir = tmp_path / "worker-tmp"
    tmpdir.mkdir()

    def start(broker_url: str, *, concurrency: int = 1, ready: bool = True, **extra: str) -> Worker:
        visibility = extra.get("PINHOLE_BROKER_VISIBILITY_TIMEOUT")
        use_broker(broker_url, int(visibility) if visibility else None)
        if broker_url.startswith("redis") and not workers:
            flush_redis(broker_url)
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "webui.settings",
            "DATABASE_URL": database_url(),
            "CELERY_BROKER_URL": broker_url,
            "PINHOLE_DATA_DIR": str(data_dir),
            # Backbone weights and exported ONNX graphs are shared with this process: no re-export.
            "PINHOLE_MODEL_CACHE": str(django_settings.PINHOLE_MODEL_CACHE),
            "PINHOLE_HEARTBEAT_STALE_S": "3",
            "PINHOLE_TEST_TRAINING_LOG": str(tmp_path / "training.log"),
            "PINHOLE_LOG_LEVEL": "INFO",
            "PINHOLE_TASKS_EAGER": "false",
            "CELERY_SKIP_CHECKS": "1",
            "TMPDIR": str(tmpdir),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])),
            **extra,
        }
        worker = Worker(env, tmp_path / f"worker{len(workers)}.log", concurrency=concurrency)
        workers.append(worker)
        if ready:
            worker.wait_ready()
        return worker

    start.tmpdir = tmpdir
    start.training_log = tmp_path / "training.log"
    yield start
    for worker in workers:
        worker.stop()


@pytest.fixture
def api(transactional_db, django_user_model):
    """An APIClient authenticated by token as a fresh user."""
    from rest_framework.test import APIClient

    from webui.api.models import ApiToken

    user = django_user_model.objects.create_user(username="ingrid", password="pw-ingrid")
    _token, key = ApiToken.create_for(user, "integration tests")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    client.user = user
    return client


@pytest.fixture
def labelled_project(api, data_dir):
    """A project created and filled over the API: 'red' and 'blue', six generated images each."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = api.post("/api/v1/projects/", {"name": "Integration"}, format="json")
    assert response.status_code == 201, response.json()
    project_id = response.json()["id"]
    for name, colour, base in (("red", RED, 0), ("blue", BLUE, 100)):
        files = [
            SimpleUploadedFile(f"{name}{i}.png", png(colour, base + i), content_type="image/png")
            for i in range(6)
        ]
        response = api.post(
            f"/api/v1/projects/{project_id}/images/", {"files": files, "label": name}, format="multipart"
        )
        assert response.status_code == 201, response.json()
    return project_id
