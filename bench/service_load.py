"""What one worker asks of PostgreSQL and Redis, to size them for several GPU hosts.

Runs `make run`'s processes (one worker) against a scratch PostgreSQL database and Redis database 5 on
this machine, then reads the servers' own counters: transactions and rows written (pg_stat_database)
and commands (Redis INFO) per second, idle for 30 s, then while hymenoptera/train (245 photos) trains
from nothing cached. Compare with the servers' capacity here:
    pgbench -i -s 5 DB && pgbench -c 8 -j 2 -T 15 -N DB    # write transactions/s
    redis-benchmark -n 100000 -c 8 -q -t set,lpush,rpop    # commands/s
    .venv/bin/python -m bench.service_load                 # needs PostgreSQL on 127.0.0.1 (trust) and Redis
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.api_pipeline import Site, _upload
from bench.common import report, require_dataset

DATABASE = "pinhole_service_load"


def _psql(sql: str, database: str = "postgres") -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-At", "-c", sql],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    if out.returncode:
        sys.exit(f"bench: PostgreSQL on 127.0.0.1 is needed ({out.stderr.strip()})")
    return out.stdout.strip()


def _counters(redis_client) -> tuple[int, int, int, int]:
    commits, rows, written = _psql(
        "select xact_commit, tup_inserted + tup_updated + tup_deleted, "
        f"(select pg_database_size('{DATABASE}')) from pg_stat_database where datname = '{DATABASE}'"
    ).split("|")
    return int(commits), int(rows), int(written), int(redis_client.info("stats")["total_commands_processed"])


def _rates(before, after, seconds: float) -> dict:
    names = ("transactions_per_s", "rows_written_per_s", "database_growth_mb_per_s", "redis_commands_per_s")
    scale = (1, 1, 1 / 2**20, 1)
    return {
        n: round((b - a) * k / seconds, 2) for n, a, b, k in zip(names, before, after, scale, strict=True)
    }


def main() -> dict:
    import redis

    root = require_dataset()
    _psql(f"DROP DATABASE IF EXISTS {DATABASE}")
    _psql(f"CREATE DATABASE {DATABASE}")
    client = redis.Redis(host="127.0.0.1", port=6379, db=5)
    client.flushdb()
    env = {
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DATABASE}",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/5",
    }
    try:
        with tempfile.TemporaryDirectory(prefix="pinhole-load-") as tmp:
            site = Site(Path(tmp), workers=1, env=env)
            try:
                project = site.api("POST", "projects/", json={"name": "Load", "labels": ["ants", "bees"]})[
                    "id"
                ]
                for label in ("ants", "bees"):
                    _upload(site, project, sorted((root / "train" / label).iterdir()), label)
                time.sleep(8)  # the worker has loaded the network
                before, started = _counters(client), time.perf_counter()
                time.sleep(30)
                idle = _rates(before, _counters(client), time.perf_counter() - started)
                before, started = _counters(client), time.perf_counter()
                run = site.api("POST", f"projects/{project}/train/", json={"strategy": "linear"})
                while run["status"] in ("queued", "running"):
                    time.sleep(1)  # the client's own reads are a few of the transactions counted
                    run = site.api("GET", f"runs/{run['id']}/")
                seconds = time.perf_counter() - started
                training = _rates(before, _counters(client), seconds)
            finally:
                site.close()
    finally:
        _psql(f"DROP DATABASE IF EXISTS {DATABASE}")
        client.flushdb()
    return report(
        "service_load",
        {"idle": idle, "training": {"status": run["status"], "seconds": round(seconds, 1), **training}},
    )


if __name__ == "__main__":
    main()
