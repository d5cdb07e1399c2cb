"""`make run`: the web server and a Celery worker in one command; Ctrl-C stops both.

Production runs gunicorn and `celery worker` as separate services (see docker/); on one machine a
person wants a single command that brings up everything with the embedded defaults, says in a few
lines when it is ready and where to sign in, and keeps going when a process dies.

Each process's own output goes to PINHOLE_DATA_DIR/logs/<name>.log; the terminal gets a short
account. A process that dies is started again (a worker killed mid-task hands its task to the new
one through the job heartbeats), unless it keeps dying, which stops everything with a pointer to its
log.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

WORKER_MAX_MEMORY_KIB = 1_500_000  # resident size after a task; linear training stays near 1 GB
# A process that dies this many times within RESTART_WINDOW_S is broken, not unlucky: stop.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 120.0
# What a child prints when it is ready (Celery's "celery@host ready."), and the lines of its output
# that the terminal shows as they come (everything is in its log).
READY_MARK = " ready."
ECHOED = ("ERROR", "CRITICAL")


def web_command(python: str, host: str, port: int | str) -> list[str]:
    """The web server of `make run`: gunicorn, as in production.

    Django's runserver keeps connections alive but writes headers and body in separate packets, so a
    keep-alive client waits ~40 ms on delayed ACKs for every answer (measured: 72 ms vs 30 ms per
    prediction); gunicorn answers in one write.
    """
    return [
        python, "-m", "gunicorn", "webui.wsgi", "--bind", f"{host}:{port}",
        "--workers", "2", "--threads", "4", "--timeout", "120", "--access-logfile", "-",
    ]  # fmt: skip


def worker_command(python: str) -> list[str]:
    """One worker process for both queues: a laptop has no separate GPU host.

    Production training workers take one task per child (docker/compose.yaml). Here that would reload
    the backbone for every task, light ones included (a retrain answers in about 2 s, a reload adds
    about 1 s), so the child is replaced only once a task has left it larger than
    WORKER_MAX_MEMORY_KIB: after an adapted (PyTorch) training, not after a linear one.
    """
    return [
        python, "-m", "celery", "-A", "webui", "worker", "-Q", "default,training", "-c", "1",
        "--max-memory-per-child", str(WORKER_MAX_MEMORY_KIB), "--loglevel", "INFO",
    ]  # fmt: skip


def say(message: str) -> None:
    print(f"pinhole | {message}", flush=True)


class Child:
    """One supervised process: started in its own process group, its output copied to a log file."""

    def __init__(self, name: str, command: list[str], env: dict, log_path: Path):
        self.name, self.command, self.env, self.log_path = name, command, env, log_path
        self.process: subprocess.Popen | None = None
        self.deaths: list[float] = []
        self.ready = threading.Event()

    def start(self) -> None:
        # Its own process group: a terminal's Ctrl-C reaches only the supervisor, which asks each child
        # once (a second SIGINT would make Celery drop its running task), and whatever a child leaves
        # behind (gunicorn's workers, the Celery pool) can be found and ended by its group.
        self.ready.clear()
        self.process = subprocess.Popen(
            self.command, env=self.env, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        threading.Thread(target=self._copy, args=(self.process,), daemon=True).start()

    def _copy(self, process: subprocess.Popen) -> None:
        with open(self.log_path, "ab") as log:
            for line in iter(process.stdout.readline, b""):
                log.write(line)
                log.flush()
                text = line.decode(errors="replace").rstrip()
                if READY_MARK in text:
                    self.ready.set()
                    say(f"the {self.name} is ready")
                elif any(mark in text for mark in ECHOED):
                    say(f"{self.name}: {text[:200]}")

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def note_death(self) -> bool:
        """Record a death; False when the process keeps dying and should not be started again."""
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW_S] + [now]
        return len(self.deaths) < MAX_RESTARTS

    def stop(self, deadline: float) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)  # orphans of a child that did not wait for them


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _announce_when_up(url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        if _answers(url + "healthz"):
            say(f"ready: sign in at {url} (Ctrl-C stops everything)")
            return
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    args = parser.parse_args()

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="webui.settings", PYTHONUNBUFFERED="1")
    logs = Path(env.get("PINHOLE_DATA_DIR") or Path(__file__).resolve().parents[1] / "var") / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    children = [
        Child("web server", web_command(python, args.host, args.port), env, logs / "web.log"),
        Child("worker", worker_command(python), env, logs / "worker.log"),
    ]
    say(f"starting the web server and a worker; their output goes to {logs}/")
    for child in children:
        child.start()
    url = f"http://{args.host}:{args.port}/"
    finished = threading.Event()
    threading.Thread(target=_announce_when_up, args=(url, finished), daemon=True).start()

    def stop_all() -> None:
        finished.set()
        deadline = time.monotonic() + 15
        for child in children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGINT)
        for child in children:
            child.stop(deadline)

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    try:
        while True:
            for child in children:
                code = child.exited()
                if code is None:
                    continue
                log_name = child.log_path
                if not child.note_death():
                    say(f"the {child.name} keeps stopping (code {code}); see {log_name}. Stopping.")
                    stop_all()
                    return code or 1
                say(f"the {child.name} stopped (code {code}); starting it again (see {log_name})")
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(child.process.pid, signal.SIGKILL)  # what it left behind
                child.start()
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping…")
        stop_all()
        return 0


if __name__ == "__main__":
    sys.exit(main())
