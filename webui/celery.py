"""Celery application.

Heavy work (feature extraction, training, export) goes to the `training` queue, served by workers on
GPU hosts with one task per child; light work stays on `default`. Reliability settings follow
../shared/ARCHITECTURE.md: late acks with requeue when a worker dies, JSON only, and a broker
visibility timeout longer than the hard time limit.
"""

import os

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webui.settings")

app = Celery("pinhole")
app.config_from_object("django.conf:settings", namespace="CELERY")


# How often a worker asks an SQL broker (make run's SQLite file) for a message. kombu's default of one
# second made every task wait half a second on average before it started: a sixth of a retrain after
# ten new labels (`bench.api_pipeline`). One indexed SELECT per queue each time costs the idle worker
# about 1 % of a core. Redis and RabbitMQ push messages and never poll.
SQL_BROKER_POLL_SECONDS = 0.1


def _transport_options(settings) -> dict:
    # Only Redis-like transports re-deliver on a visibility timeout; kombu's SQLAlchemy transport passes
    # every option to create_engine(), which refuses unknown keywords (polling_interval among them).
    if settings.CELERY_BROKER_URL.startswith(("redis", "rediss", "sqs")):
        return {"visibility_timeout": settings.PINHOLE_BROKER_VISIBILITY_TIMEOUT}
    return {}


def _poll_sql_brokers_often() -> None:
    # Not a transport option (see _transport_options): the transport's own attribute, the default its
    # instances start from. Set whatever the broker, so every process that might use one agrees.
    from kombu.transport import sqlalchemy

    sqlalchemy.Transport.polling_interval = SQL_BROKER_POLL_SECONDS


@app.on_configure.connect
def _configure(sender, **kwargs):
    from django.conf import settings

    _poll_sql_brokers_often()
    sender.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # A task is acknowledged only when it finishes; if its worker process dies it goes back
        # to the queue instead of being lost (a worker killed mid-task).
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="default",
        task_queues=(Queue("default"), Queue("training")),
        task_routes={"webui.training.tasks.*": {"queue": "training"}},
        broker_transport_options=_transport_options(settings),
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )


@signals.before_task_publish.connect
def _time_limits_belong_to_the_worker(headers=None, **kwargs):
    # A publisher stamps its own configured limits into every message, and a worker obeys the message
    # over its own settings: PINHOLE_TASK_*_TIME_LIMIT set for the worker hosts would be ignored. Leave
    # the configured defaults out so the consuming worker's settings decide; explicit per-call limits
    # still travel.
    if headers is None:
        return
    defaults = [app.conf.task_time_limit, app.conf.task_soft_time_limit]
    if list(headers.get("timelimit") or ()) == defaults:
        headers["timelimit"] = [None, None]


@signals.worker_ready.connect
def _recover_lost_jobs(sender=None, **kwargs):
    # A starting worker re-queues the jobs of its queues whose message the broker lost.
    queues = {q.name for q in getattr(getattr(sender, "task_consumer", None), "queues", [])}
    from webui.jobs.recovery import Sweeper, recover

    recover(queues or {"default", "training"})
    Sweeper(queues or {"default", "training"}).start()


@signals.worker_process_init.connect
def _load_the_network_early(**kwargs):
    # In each pool process (the one that runs tasks), beside the task thread: see training/workers.py.
    from django.conf import settings

    if settings.PINHOLE_WORKER_WARM_UP:
        from webui.training.workers import start_in_background

        start_in_background()


app.autodiscover_tasks()
