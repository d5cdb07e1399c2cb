"""`make run`: the web server and a Celery worker in one command; Ctrl-C stops both.

Production runs gunicorn and `celery worker` as separate services (see docker/); on one machine a
person wants a single command that brings up everything with the embedded defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time


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


WORKER_MAX_MEMORY_KIB = 1_500_000  # resident size after a task; linear training stays near 1 GB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="8000")
    args = parser.parse_args()

    env = dict(os.environ, DJANGO_SETTINGS_MODULE="webui.settings", PYTHONUNBUFFERED="1")
    python = sys.executable
    commands = {"web": web_command(python, args.host, args.port), "worker": worker_command(python)}
    # Each child leads its own process group: a terminal's Ctrl-C reaches only this process, which
    # asks each child once (a second SIGINT would make Celery drop its running task), and whatever a
    # child leaves behind (gunicorn's workers, the Celery pool) can be found and ended by its group.
    children = {
        name: subprocess.Popen(cmd, env=env, start_new_session=True) for name, cmd in commands.items()
    }
    print(f"Pinhole is starting on http://{args.host}:{args.port}/ (web and worker); Ctrl-C stops both.")

    def stop(*_):
        for child in children.values():
            if child.poll() is None:
                child.send_signal(signal.SIGINT)
        deadline = time.monotonic() + 15
        for child in children.values():
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for child in children.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(child.pid, signal.SIGKILL)  # orphans of a child that did not wait for them

    signal.signal(signal.SIGTERM, lambda *_: (stop(), sys.exit(0)))
    try:
        while True:
            for name, child in children.items():
                code = child.poll()
                if code is not None:
                    print(f"The {name} process exited with code {code}; stopping.", file=sys.stderr)
                    stop()
                    return code or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop()
        return 0


if __name__ == "__main__":
    sys.exit(main())
