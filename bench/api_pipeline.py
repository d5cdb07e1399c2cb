"""The whole product through its REST API, with `make run`'s embedded defaults (no servers).

Starts the web server and a worker on a fresh data directory (SQLite, local files, SQLite broker) and a
model cache kept between runs under bench/out/ (a warm machine: the backbone exported once), and starts
measuring as soon as the site answers, while the worker may still be loading the network:
- upload of train/ (245 images) and train request -> first prediction from the new version (< 20 s);
- label ten more images, retrain -> first prediction from that version (< 3 s);
- one prediction over HTTP, median of 50 (< 50 ms);
- predictions from 4 concurrent clients on loopback (>= 100/s, 0 errors): 3 s of warm-up (the second
  web process loads the version), then 10 s measured;
- accuracy on val/ through the API (version 1, trained on train/ only), beside the CLI's.
    .venv/bin/python -m bench.api_pipeline
"""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench.common import REPO, report, require_dataset
from webui.devserver import web_command, worker_command

PYTHON = sys.executable
CLIENTS, WARM_UP_S, LOAD_S = 4, 3.0, 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _manage(env, *args) -> str:
    out = subprocess.run([PYTHON, "manage.py", *args], cwd=REPO, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{out.stderr[-2000:]}")
    return out.stdout


class Site:
    """The web server and its workers (one by default) on a temporary data directory.

    Args:
        data_dir: the site's PINHOLE_DATA_DIR (SQLite database, broker file, local files).
        workers: how many worker processes to start, each `make run`'s worker command.
        env: more settings for every process (object storage, say).
    """

    def __init__(self, data_dir: Path, *, workers: int = 1, env: dict[str, str] | None = None):
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
        model_cache = REPO / "bench" / "out" / "model-cache"
        self.warm = (model_cache / "onnx").is_dir()
        self.env.update(
            PINHOLE_DATA_DIR=str(data_dir),
            PINHOLE_MODEL_CACHE=str(model_cache),
            PINHOLE_API_PREDICT_RATE="10000/s",  # the load test measures the server, not the throttle
            DJANGO_SUPERUSER_USERNAME="bench",
            DJANGO_SUPERUSER_PASSWORD="bench-password-123",
            **(env or {}),
        )
        _manage(self.env, "migrate", "--no-input")
        _manage(self.env, "collectstatic", "--no-input", "-v0")
        _manage(self.env, "ensure_admin")
        token = _manage(self.env, "create_api_token", "bench", "--name", "bench").strip()
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"
        log = open(data_dir / "site.log", "w")  # noqa: SIM115 - closed with the processes
        self.processes = [
            subprocess.Popen(
                web_command(PYTHON, "127.0.0.1", self.port),
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            ),
        ] + [
            subprocess.Popen(
                [*worker_command(PYTHON), "-n", f"bench{n}@%h"],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            )
            for n in range(workers)
        ]  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/healthz", timeout=1).ok:
                    return
            except requests.RequestException:
                time.sleep(0.3)
        raise RuntimeError("the web server did not start")

    def api(self, method: str, path: str, **kwargs):
        response = self.session.request(method, f"{self.base}/api/v1/{path}", timeout=120, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def close(self):
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _upload(site: Site, project: int, paths: list[Path], label: str) -> None:
    for start in range(0, len(paths), 25):
        files = [("files", (p.name, p.read_bytes())) for p in paths[start : start + 25]]
        site.api("POST", f"projects/{project}/images/", files=files, data={"label": label})


def train(site: Site, project: int) -> dict:
    """Start a linear training and wait for it; the succeeded run. Raises RuntimeError if it fails."""
    run = site.api("POST", f"projects/{project}/train/", json={"strategy": "linear"})
    while run["status"] in ("queued", "running"):
        time.sleep(0.1)
        run = site.api("GET", f"runs/{run['id']}/")
    if run["status"] != "succeeded":
        raise RuntimeError(f"training {run['status']}: {run['error']}")
    return run


def _train_until_served(site: Site, project: int) -> tuple[dict, float, float]:
    """(run, seconds to SUCCEEDED, seconds to the first prediction naming the new version)."""
    probe = next((REPO.parent / "shared/datasets/hymenoptera/val/bees").iterdir()).read_bytes()
    started = time.perf_counter()
    run = train(site, project)
    trained = time.perf_counter() - started
    answer = site.api(
        "POST", f"projects/{project}/predict/", files={"file": ("q.jpg", probe)},
        data={"version": run["model_version_id"]},
    )  # fmt: skip
    assert answer["model_version_id"] == run["model_version_id"]
    return run, trained, time.perf_counter() - started


def _cli_accuracy(root: Path, work: Path) -> float:
    out = subprocess.run(
        [PYTHON, "-m", "classifier", "train", str(root / "train"), "--val", str(root / "val"), "--out",
         str(work / "cli-model"), "--strategy", "linear"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])["accuracy"]


def main() -> dict:
    root = require_dataset()
    labels = ("ants", "bees")
    train = {label: sorted((root / "train" / label).iterdir()) for label in labels}
    val = {label: sorted((root / "val" / label).iterdir()) for label in labels}
    with tempfile.TemporaryDirectory(prefix="pinhole-bench-") as tmp:
        site = Site(Path(tmp))
        try:
            project = site.api("POST", "projects/", json={"name": "Ants or bees", "labels": list(labels)})[
                "id"
            ]
            started = time.perf_counter()
            for label in labels:
                _upload(site, project, train[label], label)
            upload_s = time.perf_counter() - started
            run1, trained1, first_prediction1 = _train_until_served(site, project)

            for label in labels:  # ten more labelled images
                _upload(site, project, val[label][:5], label)
            run2, trained2, first_prediction2 = _train_until_served(site, project)

            probe = val["bees"][10].read_bytes()
            latencies = []
            for _ in range(50):
                t = time.perf_counter()
                site.api("POST", f"projects/{project}/predict/", files={"file": ("q.jpg", probe)})
                latencies.append((time.perf_counter() - t) * 1000)

            def client(worker: int, seconds: float) -> tuple[int, int]:
                """Posts photos one after another for `seconds`. Returns: (requests, errors)."""
                n = errors = 0
                until = time.perf_counter() + seconds
                while time.perf_counter() < until:
                    data = val[labels[n % 2]][(worker * 7 + n) % 60].read_bytes()
                    response = site.session.post(
                        f"{site.base}/api/v1/projects/{project}/predict/", files={"file": ("q.jpg", data)},
                        timeout=60,
                    )  # fmt: skip
                    n += 1
                    errors += response.status_code != 200
                return n, errors

            # The first seconds load the version into the web process that has not served it yet.
            with ThreadPoolExecutor(CLIENTS) as pool:
                warm = list(pool.map(client, range(CLIENTS), [WARM_UP_S] * CLIENTS))
            load_started = time.perf_counter()
            with ThreadPoolExecutor(CLIENTS) as pool:
                load = list(pool.map(client, range(CLIENTS), [LOAD_S] * CLIENTS))
            load_s = time.perf_counter() - load_started
            requests_done = sum(n for n, _ in load)
            errors = sum(e for _, e in load + warm)

            correct = total = 0
            for label in labels:
                for path in val[label]:  # v1 was trained before any val image was uploaded
                    answer = site.api(
                        "POST", f"projects/{project}/predict/", files={"file": ("q.jpg", path.read_bytes())},
                        data={"version": run1["model_version_id"]},
                    )  # fmt: skip
                    correct += answer["label"] == label
                    total += 1
        except Exception:
            print((Path(tmp) / "site.log").read_text()[-4000:], file=sys.stderr)
            raise
        finally:
            site.close()
        cli_accuracy = _cli_accuracy(root, Path(tmp))
    return report(
        "api_pipeline",
        {
            "warm_machine": site.warm,
            "upload_245_s": round(upload_s, 2),
            "train_request_to_succeeded_s": round(trained1, 2),
            "train_request_to_first_prediction_s": round(first_prediction1, 2),
            "retrain_after_10_more_to_first_prediction_s": round(first_prediction2, 2),
            "retrain_extracted": run2["metrics"]["timings"]["n_extracted"],
            "predict_http_median_ms": round(statistics.median(latencies), 1),
            "load_clients": CLIENTS,
            "load_warm_up_requests_per_s": round(sum(n for n, _ in warm) / WARM_UP_S, 1),
            "load_requests": requests_done,
            "load_errors": errors,
            "load_requests_per_s": round(requests_done / load_s, 1),
            "api_val_accuracy_v1": round(correct / total, 4),
            "api_val_n": total,
            "cli_val_accuracy": round(cli_accuracy, 4),
        },
    )


if __name__ == "__main__":
    main()
