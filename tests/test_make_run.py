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
    """Start the pair as `make run` does (after its migrate and collectstatic); yield (process, port, log)."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("needs /proc to find the processes make run leaves behind")
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env.update(PINHOLE_DATA_DIR=str(tmp_path / "var"), DJANGO_SETTINGS_MODULE="webui.settings")
    for step in (["migrate", "--no-input", "-v0"], ["collectstatic", "--no-input", "-v0"]):  # as make run
        subprocess.run([sys.executable, "manage.py", *step], cwd=REPO, env=env, check=True)
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


def _post_form(opener, url: str, fields: dict) -> int:
    import urllib.error
    import urllib.parse

    data = urllib.parse.urlencode(fields).encode()
    try:
        with opener.open(urllib.request.Request(url, data=data), timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_limits_hold_exactly_across_the_web_servers_processes(make_run):
    """make run's gunicorn has two processes with four threads each; requests sent eight at a time land
    on both, and each limit still allows exactly its count (the counters are in the database)."""
    import http.cookiejar
    import re
    import urllib.error
    from concurrent.futures import ThreadPoolExecutor

    process, port, log, started = make_run
    base = f"http://127.0.0.1:{port}"

    def guess(i: int) -> int:
        try:
            with urllib.request.urlopen(f"{base}/s/not-a-real-token-{i}/", timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(guess, range(40)))
    # PINHOLE_SHARE_LOOKUP_FAILURES_PER_MINUTE: 30 wrong tokens per address, then 429.
    assert codes.count(404) == 30 and codes.count(429) == 10, codes

    def sign_in(i: int) -> int:
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        with opener.open(f"{base}/accounts/login/", timeout=30) as page:
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode()).group(1)
        fields = {"username": "nobody-in-particular", "password": f"wrong-{i}", "csrfmiddlewaretoken": token}
        return _post_form(opener, f"{base}/accounts/login/", fields)

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(sign_in, range(14)))
    # PINHOLE_SIGNIN_FAILURES_PER_ACCOUNT: 10 wrong passwords per account, then 429.
    assert codes.count(200) == 10 and codes.count(429) == 4, codes


def test_a_keep_alive_client_survives_refusals_that_leave_a_body_unread(make_run):
    """401 and 404 answered before a 200 KB body is read: the connection stays usable, and the next
    request on it is answered (before, gunicorn dropped the connection and that request failed)."""
    import http.client

    process, port, log, started = make_run
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for path in ("/api/v1/projects/1/predict/", "/api/v1/no-such-endpoint/") * 3:
        connection.request("POST", path, body=b"x" * 200_000, headers={"Content-Type": "image/png"})
        refused = connection.getresponse()
        refused.read()
        assert refused.status in (401, 404), (path, refused.status)
        socket_before = connection.sock
        connection.request("GET", "/healthz")
        healthy = connection.getresponse()
        assert healthy.status == 200 and healthy.read() == b'{"ok": true}'
        assert connection.sock is socket_before  # the same connection, kept alive
    connection.close()
