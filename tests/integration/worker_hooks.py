"""Test-only faults for a real worker, loaded with `celery worker --include worker_hooks`.

Production code carries no test switches: this module, imported by the worker's main process before
it forks its pool, wraps `services._train_and_store` according to environment variables that only the
integration tests set:

    PINHOLE_TEST_TRAINING_LOG=path   append "start|end <run> <pid> <time>" for every training body
    PINHOLE_TEST_TRAINING_DELAY_S=N  sleep N seconds before training (the heartbeat thread keeps
                                     the run fresh meanwhile): a window to kill, or to outlast a
                                     time limit or the broker's visibility timeout
    PINHOLE_TEST_IGNORE_SOFT_LIMIT=1 the delay above shrugs off the soft time limit (a stuck native call)
    PINHOLE_TEST_CRASH_TRAINING=1    os._exit() inside the task, every time (a segfault, the OOM killer)
    PINHOLE_TEST_REDIS_RESTORE_S=N   look for Redis messages past their visibility timeout every N s
                                     (kombu's default sweep runs about every 100 s)
    PINHOLE_TEST_BATCH_DELAY_S=N     sleep N seconds before each chunk of a batch prediction, and log
                                     "batch-start|batch-end <batch> <pid> <time>" to the training log
"""

from __future__ import annotations

import os
import time

import django
from celery.exceptions import SoftTimeLimitExceeded

django.setup()

from webui.training import services  # noqa: E402

_real_train_and_store = services._train_and_store


def _note(event: str, run_id: int) -> None:
    path = os.environ.get("PINHOLE_TEST_TRAINING_LOG")
    if path:
        with open(path, "a") as handle:
            handle.write(f"{event} {run_id} {os.getpid()} {time.time():.3f}\n")


def _train_and_store(run, workdir):
    _note("start", run.pk)
    try:
        if os.environ.get("PINHOLE_TEST_CRASH_TRAINING") == "1":
            os._exit(70)
        deadline = time.monotonic() + float(os.environ.get("PINHOLE_TEST_TRAINING_DELAY_S") or 0)
        while (left := deadline - time.monotonic()) > 0:
            try:
                time.sleep(left)
            except SoftTimeLimitExceeded:
                # Like a long native call that never returns to Python: only the hard limit ends it.
                if os.environ.get("PINHOLE_TEST_IGNORE_SOFT_LIMIT") != "1":
                    raise
        return _real_train_and_store(run, workdir)
    finally:
        _note("end", run.pk)


services._train_and_store = _train_and_store

from webui.serving import batch  # noqa: E402

_real_run_batch, _real_predict_stored = batch.run_batch, batch.predict_stored


def _run_batch(batch_id):
    _note("batch-start", batch_id)
    try:
        return _real_run_batch(batch_id)
    finally:
        _note("batch-end", batch_id)


def _predict_stored(version, images):
    time.sleep(float(os.environ.get("PINHOLE_TEST_BATCH_DELAY_S") or 0))
    return _real_predict_stored(version, images)


batch.run_batch, batch.predict_stored = _run_batch, _predict_stored

if os.environ.get("PINHOLE_TEST_REDIS_RESTORE_S"):
    from webui.celery import app

    app.conf.broker_transport_options = {
        **(app.conf.broker_transport_options or {}),
        "unacked_restore_interval": int(os.environ["PINHOLE_TEST_REDIS_RESTORE_S"]),
        "unacked_restore_throttle": 1,
    }
