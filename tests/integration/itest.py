"""Helpers for the integration tests: real worker processes, brokers, the API round trip.

Imported by conftest.py and the test modules (tests/integration is put on sys.path by conftest.py;
the worker finds worker_hooks.py the same way, through PYTHONPATH).
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CELERY = Path(sys.executable).with_name("celery")
REQUIRE_SERVICES = os.environ.get("PINHOLE_REQUIRE_SERVICES", "").strip().lower() in {"1", "true", "yes"}
RED, BLUE, GREEN = (210, 40, 40), (40, 40, 210), (40, 200, 40)


def is_sqlite() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"


def is_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def configured_broker() -> str:
    """The broker kind the suite runs against: redis on the PostgreSQL + Redis run, else sqla."""
    return "redis" if os.environ.get("CELERY_BROKER_URL", "").startswith("redis") else "sqla"


def missing_service(reason: str):
    """Skip for a service that is not there, except in CI where that is a failure."""
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (PINHOLE_REQUIRE_SERVICES is set)")
    pytest.skip(reason)


def redis_url() -> str:
    url = os.environ.get("PINHOLE_TEST_REDIS_URL", "").strip()
    if not url:
        missing_service("PINHOLE_TEST_REDIS_URL is not set")
    return url


def redis_ping(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=2).ping())
    except redis.RedisError:
        return False


def flush_redis(url: str) -> None:
    import redis

    redis.Redis.from_url(url).flushdb()


def database_url() -> str:
    """DATABASE_URL for a subprocess: the test database pytest-django created (and data committed)."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        name = str(db["NAME"])
        assert name != ":memory:" and "mode=memory" not in name, "the SQLite test database must be a file"
        return f"sqlite:///{Path(name).resolve()}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2, on_timeout=None):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = on_timeout() if on_timeout else ""
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{detail}")
        time.sleep(interval)


class Worker:
    """One `celery worker` subprocess; its output goes to a log file the assertions quote."""

    def __init__(self, env: dict[str, str], log_path: Path, concurrency: int = 1):
        self.log_path = log_path
        self.name = f"itest-{uuid.uuid4().hex[:8]}@localhost"
        command = [
            str(CELERY),
            "-A",
            "webui",
            "worker",
            "-Q",
            "default,training",
            "-c",
            str(concurrency),
            "--pool",
            "prefork",
            "-n",
            self.name,
            "--include",
            "worker_hooks",
            "--loglevel",
            "INFO",
            # No gossip, mingle or event heartbeats: one worker, and mingle alone costs seconds.
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ]
        self._log = log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self, tail: int = 6000) -> str:
        text = self.log_path.read_text(errors="replace")
        return f"--- worker log ({self.log_path}) ---\n{text[-tail:]}"

    def wait_ready(self, timeout: float = 60) -> None:
        def ready():
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited with {self.process.returncode}\n{self.log()}")
            return " ready." in self.log_path.read_text(errors="replace")

        wait_for(ready, timeout, "the worker to be ready", on_timeout=self.log)

    def pool_children(self) -> list[int]:
        return children_of(self.pid)

    def stop(self) -> None:
        """Kill the worker and every process of its session (pool children included)."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        self._log.close()


def training_events(path: Path) -> list[tuple[str, int, int, float]]:
    """(event, run id, pid, time) lines written by worker_hooks."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        event, run, pid, at = line.split()
        rows.append((event, int(run), int(pid), float(at)))
    return rows


def png(colour, seed: int, size=(64, 64)) -> bytes:
    import numpy as np
    from PIL import Image as PILImage

    rng = np.random.default_rng(seed)
    noise = rng.integers(-40, 40, size=(size[1], size[0], 3))
    pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype("uint8")
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def post_train(api, project_id: int, **params) -> dict:
    response = api.post(
        f"/api/v1/projects/{project_id}/train/", {"strategy": "linear", **params}, format="json"
    )
    assert response.status_code == 202, response.json()
    return response.json()


def get_run(api, run_id: int) -> dict:
    response = api.get(f"/api/v1/runs/{run_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def wait_for_run(api, run_id: int, statuses, worker: Worker | None = None, timeout: float = 90) -> dict:
    statuses = {statuses} if isinstance(statuses, str) else set(statuses)
    seen = {}

    def done():
        seen["run"] = get_run(api, run_id)
        return seen["run"] if seen["run"]["status"] in statuses else None

    return wait_for(
        done,
        timeout,
        f"run {run_id} to become {sorted(statuses)}",
        interval=0.3,
        on_timeout=lambda: f"last seen: {seen.get('run')}\n" + (worker.log() if worker else ""),
    )


def predict(api, project_id: int, colour, seed: int = 999):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return api.post(
        f"/api/v1/projects/{project_id}/predict/",
        {"file": SimpleUploadedFile("q.png", png(colour, seed), content_type="image/png")},
        format="multipart",
    )


def queued_messages(broker_url: str) -> int:
    """Messages still waiting or delivered-but-unacknowledged on the broker's queues."""
    if broker_url.startswith("redis"):
        import redis

        client = redis.Redis.from_url(broker_url)
        return client.llen("training") + client.llen("default") + client.hlen("unacked")
    import sqlite3

    path = broker_url.split("sqla+sqlite:///", 1)[1]
    with sqlite3.connect(path, timeout=30) as db:
        # The SQLAlchemy transport hides a delivered message (visible = 0) and never deletes it.
        return db.execute("SELECT count(*) FROM kombu_message WHERE visible = 1").fetchone()[0]


def pinhole_temp_dirs(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).glob("pinhole-run*"))
