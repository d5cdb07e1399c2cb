"""Several workers and object storage, measured through the REST API with `make run`'s processes.

- drain: 8 projects (15 ants + 15 bees each, no photo shared, so no vector is cached) train at once;
  seconds from the first train request until all 8 versions exist, with one worker and with two;
- memory: the peak resident memory of the worker's pool process while it trains on 2,000 solar-cell
  images (ELPV, the `bench` extra) read from an S3 bucket, against the same from local files (target:
  within 200 MB).

Storage is a bucket on moto's S3 server (tests/integration/object_store.py), the queue make run's
SQLite broker, shared by the worker processes of one machine.
    .venv/bin/python -m bench.multi_host
"""

from __future__ import annotations

import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.api_pipeline import Site
from bench.common import REPO, report, require_dataset

sys.path.insert(0, str(REPO / "tests" / "integration"))
from object_store import ObjectStore  # noqa: E402

PROJECTS, PER_LABEL, MEMORY_IMAGES = 8, 15, 2000


def _upload(site: Site, project: int, files: list[tuple[str, bytes]], label: str) -> None:
    for start in range(0, len(files), 50):
        batch = [("files", item) for item in files[start : start + 50]]
        site.api("POST", f"projects/{project}/images/", files=batch, data={"label": label})


def _wait_all(site: Site, run_ids: list[int], timeout: float = 900, on_tick=None) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        if on_tick is not None:
            on_tick()
        runs = [site.api("GET", f"runs/{run_id}/") for run_id in run_ids]
        if all(run["status"] not in ("queued", "running") for run in runs):
            failed = [run["error"] for run in runs if run["status"] != "succeeded"]
            if failed:
                raise RuntimeError(f"trainings failed: {failed}")
            return runs
        if time.monotonic() > deadline:
            raise RuntimeError("trainings did not finish in time")
        time.sleep(0.2)


def _drain(root: Path, store: ObjectStore, workers: int) -> float:
    ants, bees = (sorted((root / "train" / label).iterdir()) for label in ("ants", "bees"))
    with tempfile.TemporaryDirectory(prefix="pinhole-drain-") as tmp:
        site = Site(Path(tmp), workers=workers, env=store.env(store.new_bucket()))
        try:
            projects = []
            for p in range(PROJECTS):
                project = site.api("POST", "projects/", json={"name": f"P{p}", "labels": ["ants", "bees"]})[
                    "id"
                ]
                for label, paths in (("ants", ants), ("bees", bees)):
                    chosen = paths[p * PER_LABEL : (p + 1) * PER_LABEL]
                    _upload(site, project, [(path.name, path.read_bytes()) for path in chosen], label)
                projects.append(project)
            # Every worker has loaded the network before the clock starts (it does so as it starts).
            time.sleep(5)
            started = time.perf_counter()
            with ThreadPoolExecutor(PROJECTS) as pool:
                runs = list(
                    pool.map(
                        lambda p: site.api("POST", f"projects/{p}/train/", json={"strategy": "linear"}),
                        projects,
                    )
                )
            _wait_all(site, [run["id"] for run in runs])
            return time.perf_counter() - started
        finally:
            site.close()


def _pool_peak_kib(site: Site) -> int:
    """VmHWM of the worker's pool children (the processes that train)."""
    peak = 0
    for worker in site.processes[1:]:
        for child in Path(f"/proc/{worker.pid}/task").glob("*/children"):
            for pid in child.read_text().split():
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:  # it ended meanwhile
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
    return peak


def _memory(store: ObjectStore | None, images: list[tuple[str, bytes, str]]) -> dict:
    env = store.env(store.new_bucket()) if store is not None else {}
    with tempfile.TemporaryDirectory(prefix="pinhole-memory-") as tmp:
        site = Site(Path(tmp), workers=1, env=env)
        try:
            labels = sorted({label for _, _, label in images})
            project = site.api("POST", "projects/", json={"name": "Cells", "labels": labels})["id"]
            for label in labels:
                _upload(site, project, [(n, data) for n, data, lab in images if lab == label], label)
            time.sleep(5)
            before = _pool_peak_kib(site)
            peak = [before]
            started = time.perf_counter()
            run = site.api("POST", f"projects/{project}/train/", json={"strategy": "linear"})
            # Sampled while it trains: the worker may replace its pool process after a large task.
            [run] = _wait_all(site, [run["id"]], on_tick=lambda: peak.append(_pool_peak_kib(site)))
            return {
                "train_s": round(time.perf_counter() - started, 1),
                "peak_mb": round(max(peak) / 1024),
                "peak_before_mb": round(before / 1024),
                "n_extracted": run["metrics"]["timings"]["n_extracted"],
            }
        finally:
            site.close()


def _elpv(n: int) -> list[tuple[str, bytes, str]]:
    from bench.quality_sets import _elpv_label, _elpv_labels

    paths, probability, _kind = _elpv_labels()
    return [
        (p.name, p.read_bytes(), _elpv_label(q)) for p, q in list(zip(paths, probability, strict=True))[:n]
    ]


def main() -> dict:
    root = require_dataset()
    with tempfile.TemporaryDirectory(prefix="pinhole-s3-") as tmp:
        store = ObjectStore(Path(tmp) / "s3.log")
        try:
            one = _drain(root, store, workers=1)
            two = _drain(root, store, workers=2)
            result = {
                "drain_projects": PROJECTS,
                "drain_one_worker_s": round(one, 1),
                "drain_two_workers_s": round(two, 1),
                "drain_speed_up": round(one / two, 2),
            }
            try:
                images = _elpv(MEMORY_IMAGES)
            except ImportError:
                result["memory"] = "skipped: pip install -e '.[bench]' for the ELPV images"
            else:
                s3, local = _memory(store, images), _memory(None, images)
                result.update(
                    memory_s3=s3,
                    memory_local=local,
                    memory_s3_minus_local_mb=s3["peak_mb"] - local["peak_mb"],
                )
        finally:
            store.stop()
    return report("multi_host", result)


if __name__ == "__main__":
    main()
