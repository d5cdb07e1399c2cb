"""`make run`'s process pair (webui/devserver.py): the site answers, the worker is ready, the terminal
gets a short account ending with where to sign in, a dead worker is started again, and Ctrl-C stops
both, leaving nothing running.

Runs the real gunicorn and Celery worker on the embedded defaults (SQLite, the SQLite broker, local
files) in a temporary data directory, as on a fresh machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _processes() -> dict[int, tuple[int, str]]:
    """Live (not zombie) processes: {pid: (parent pid, command line)}."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                found[int(entry.name)] = (
                    int(fields[1]),
                    (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(),
                )
        except (OSError, ValueError, IndexError):
            continue
    return found


def _descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`: {pid: command line}."""
    table = _processes()
    found, frontier = {}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, cmd) in table.items():
            if ppid == parent and child not in found:
                found[child] = cmd
                frontier.append(child)
    return found


def _alive(pids) -> list[int]:
    table = _processes()
    return [pid for pid in pids if pid in table]


def _wait_for(what: str, check, timeout: float, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    pytest.fail(f"{what} within {timeout:.0f} s; output:\n{log.read_text()[-3000:]}")


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def make_run(tmp_path):
    """Start the pair as `make run` does (after its migrate); yield (process, port, log)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the processes make run leaves behind")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(PINHOLE_DATA_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="webui.settings")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v0"], cwd=REPO, env=env, check=True
    )
    port = _free_port()
    log = tmp_path / "make-run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "webui.devserver", "--port", str(port)],
            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    started: dict[int, str] = {}
    try:
        _wait_for("the site did not answer", lambda: _answers(f"http://127.0.0.1:{port}/healthz"), 90, log)
        _wait_for(
            "the worker did not become ready", lambda: b"the worker is ready" in log.read_bytes(), 90, log
        )
        started.update(_descendants(process.pid))
        yield process, port, log, started
    finally:
        for pid in [process.pid, *_alive(started)]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait(timeout=10)


def test_ctrl_c_stops_the_site_and_the_worker(make_run):
    process, port, log, started = make_run
    assert any("celery" in cmd for cmd in started.values()), started
    assert any("gunicorn" in cmd for cmd in started.values()), started
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C sends: the foreground group
    assert process.wait(timeout=30) == 0, log.read_text()[-3000:]
    _wait_for("processes were left running", lambda: not _alive(started), 15, log)
    assert not _answers(f"http://127.0.0.1:{port}/healthz")


def test_the_terminal_gets_a_short_account_ending_with_where_to_sign_in(make_run, tmp_path):
    process, port, log, started = make_run
    _wait_for("no sign-in line", lambda: b"sign in at" in log.read_bytes(), 30, log)
    assert _answers(f"http://127.0.0.1:{port}/healthz")
    lines = log.read_text().splitlines()
    assert len(lines) <= 6, lines
    assert all(line.startswith("pinhole | ") for line in lines), lines
    assert any(f"ready: sign in at http://127.0.0.1:{port}/" in line for line in lines), lines
    # The processes' own output is kept, in the data directory's logs.
    logs = tmp_path / "var" / "logs"
    assert "GET /healthz" in (logs / "web.log").read_text()
    assert " ready." in (logs / "worker.log").read_text()


def test_it_starts_a_dead_worker_again_and_the_site_stays_up(make_run):
    process, port, log, started = make_run

    def worker_pids():
        table = _processes()
        return [pid for pid, (ppid, cmd) in table.items() if ppid == process.pid and "celery" in cmd]

    [worker] = worker_pids()
    os.kill(worker, signal.SIGKILL)
    _wait_for("the worker was not started again", lambda: b"starting it again" in log.read_bytes(), 30, log)
    _wait_for(
        "the new worker did not become ready",
        lambda: log.read_text().count("the worker is ready") == 2,
        90,
        log,
    )
    assert process.poll() is None and _answers(f"http://127.0.0.1:{port}/healthz")
    [again] = worker_pids()
    assert again != worker
    started.update(_descendants(process.pid))
