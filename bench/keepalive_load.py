"""Eight keep-alive clients for 30 s against API predict and share-page predict, with refusals mixed in.

`make run`'s web server (gunicorn, 2 processes x 4 threads) and one worker; limits raised so the load
measures the server. Each client keeps one connection (a requests.Session) and sends, in turn, an API
prediction, a share-page prediction, and every fifth time a POST of a 200 KB photo without a token (a
401 answered before its body is read: what used to leave connections broken). Counts connection
errors and records answer times.
    .venv/bin/python -m bench.keepalive_load
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

from bench.api_pipeline import Site, _train_until_served, _upload
from bench.common import REPO, report, require_dataset

CLIENTS = 8
SECONDS = 30


def _share_token(data_dir: Path, project: int) -> str:
    """A share link made through the models, as the share page would (the bench shares the database)."""
    os.environ.update(PINHOLE_DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="webui.settings")
    sys.path.insert(0, str(REPO))
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from webui.projects.models import Project
    from webui.serving.models import ShareLink

    _link, token = ShareLink.create_for(
        Project.objects.get(pk=project), get_user_model().objects.get(username="bench")
    )
    return token


def main() -> dict:
    root = require_dataset()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = Path(scratch)
        site = Site(
            data_dir,
            env={"PINHOLE_SHARE_RATE_PER_MINUTE": "1000000", "PINHOLE_TRY_RATE_PER_MINUTE": "1000000"},
        )
        try:
            project = site.api("POST", "projects/", json={"name": "load", "labels": ["ants", "bees"]})["id"]
            for label in ("ants", "bees"):
                _upload(site, project, sorted((root / "train" / label).iterdir())[:12], label)
            _train_until_served(site, project)
            token = _share_token(data_dir, project)
            photos = [p.read_bytes() for p in sorted((root / "val" / "bees").iterdir())[:8]]
            big = max((p.read_bytes() for p in sorted((root / "val" / "ants").iterdir())), key=len)
            api_url = f"{site.base}/api/v1/projects/{project}/predict/"
            share_url = f"{site.base}/s/{token}/predict"
            lock = threading.Lock()
            times = {"api": [], "share": []}
            counts = {"errors": 0, "refused_401": 0, "unexpected": 0, "requests": 0}
            deadline = time.monotonic() + SECONDS

            def client(n: int) -> None:
                session = requests.Session()
                auth = {"Authorization": site.session.headers["Authorization"]}
                i = 0
                while time.monotonic() < deadline:
                    i += 1
                    photo = photos[(n + i) % len(photos)]
                    for kind, url, headers, body, expected in (
                        ("api", api_url, auth, photo, 200),
                        ("share", share_url, {}, photo, 200),
                        ("refusal", api_url, {}, big, 401),
                    ):
                        if kind == "refusal" and i % 5:
                            continue
                        started = time.perf_counter()
                        try:
                            response = session.post(
                                url, files={"file": ("x.jpg", body)}, headers=headers, timeout=60
                            )
                        except requests.RequestException:
                            with lock:
                                counts["errors"] += 1
                                counts["requests"] += 1
                            continue
                        taken = time.perf_counter() - started
                        with lock:
                            counts["requests"] += 1
                            if response.status_code != expected:
                                counts["unexpected"] += 1
                            elif kind == "refusal":
                                counts["refused_401"] += 1
                            else:
                                times[kind].append(taken)

            threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()

            def summary(values: list[float]) -> dict:
                ordered = sorted(values)
                return {
                    "answered": len(ordered),
                    "p50_ms": round(statistics.median(ordered) * 1000, 1),
                    "p99_ms": round(ordered[int(0.99 * (len(ordered) - 1))] * 1000, 1),
                }

            return report(
                "keepalive_load",
                {
                    "clients": CLIENTS,
                    "seconds": SECONDS,
                    "refusal_body_bytes": len(big),
                    **counts,
                    "api_predict": summary(times["api"]),
                    "share_predict": summary(times["share"]),
                },
            )
        finally:
            site.close()


if __name__ == "__main__":
    main()
