"""Which process holds a job, and whether it is gone.

A heartbeat tells any host that a job's worker went silent, but only after PINHOLE_HEARTBEAT_STALE_S.
A worker restarted within that window on the same host can know at once: the process that claimed the
job is no longer there. A job records its claimant as `host:pid:start`, where `start` is the process's
creation time, so a pid the system handed to a new process since does not pass for the old one.

Only a process on the same host can tell; for a claimant on another host, `is_gone` says False and the
heartbeat decides.
"""

from __future__ import annotations

import functools
import socket

import psutil


def _start_of(pid: int) -> str:
    return f"{psutil.Process(pid).create_time():.2f}"


@functools.cache
def _this(pid: int) -> str:
    return f"{socket.gethostname()}:{pid}:{_start_of(pid)}"


def this_process() -> str:
    """Returns: the claimant name of the calling process (a forked pool child gets its own)."""
    return _this(psutil.Process().pid)


def is_gone(claimant: str) -> bool:
    """True when `claimant` names a process of this host that no longer runs.

    False for an empty or unreadable name, a process of another host, or one still running.
    """
    host, _, rest = (claimant or "").partition(":")
    pid_text, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not start:
        return False
    try:
        return _start_of(int(pid_text)) != start
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:  # not ours to look at (another user's process): treat it as alive
        return False
