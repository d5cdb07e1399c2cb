"""Small files holding huge pictures, sent to `make run`'s web server eight at a time.

The attack that stalled the site: uploads of 11 KB PNGs holding 9400 x 9400 one-bit pixels (88 MP,
265 MB as RGB) and predictions of a 9000 x 9000 PNG. Measures how long /healthz takes while they
arrive, what the web processes hold in memory before and after, and what the attackers were told.
    .venv/bin/python -m bench.hostile_images
"""

from __future__ import annotations

import io
import statistics
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from PIL import Image

from bench.api_pipeline import Site, _train_until_served, _upload
from bench.common import report, require_dataset


def _png(mode: str, side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (side, side), 1 if mode == "1" else (90, 90, 90)).save(buffer, format="PNG")
    return buffer.getvalue()


def _rss_mb(root_pid: int) -> float:
    """Resident memory of a process and its children (gunicorn's master and workers), in MB."""
    total, pids = 0, {root_pid}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == root_pid:
                    pids.add(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return round(total / 1024, 1)


def main() -> dict:
    root = require_dataset()
    bomb, big = _png("1", 9400), _png("RGB", 9000)
    with tempfile.TemporaryDirectory() as scratch:
        site = Site(Path(scratch))
        try:
            project = site.api("POST", "projects/", json={"name": "hostile", "labels": ["ants", "bees"]})[
                "id"
            ]
            for label in ("ants", "bees"):
                _upload(site, project, sorted((root / "train" / label).iterdir())[:12], label)
            _train_until_served(site, project)
            web = site.processes[0].pid
            # Every web process loads the model first: the memory measured is what the attack adds.
            probe_photo = sorted((root / "val" / "bees").iterdir())[0].read_bytes()
            for _ in range(8):
                site.api("POST", f"projects/{project}/predict/", files={"file": ("q.jpg", probe_photo)})
            healthz = f"{site.base}/healthz"
            calm = [requests.get(healthz, timeout=120).elapsed.total_seconds() for _ in range(10)]
            rss_before = _rss_mb(web)
            stop, during, peak = threading.Event(), [], [rss_before]

            def probe():
                while not stop.is_set():
                    started = time.perf_counter()
                    requests.get(healthz, timeout=300)
                    during.append(time.perf_counter() - started)
                    peak.append(_rss_mb(web))
                    time.sleep(0.1)

            def attack(i: int) -> int:
                if i % 2:
                    files = [("files", (f"bomb{n}.png", bomb)) for n in range(8)]
                    url = f"{site.base}/api/v1/projects/{project}/images/"
                    return site.session.post(url, files=files, timeout=600).status_code
                url = f"{site.base}/api/v1/projects/{project}/predict/"
                return site.session.post(url, files={"file": ("big.png", big)}, timeout=600).status_code

            watcher = threading.Thread(target=probe)
            watcher.start()
            started = time.perf_counter()
            with ThreadPoolExecutor(8) as pool:
                answers = Counter(pool.map(attack, range(16)))
            attack_s = time.perf_counter() - started
            stop.set()
            watcher.join()
            settled = time.perf_counter()
            while _rss_mb(web) > rss_before + 100 and time.perf_counter() - settled < 10:
                time.sleep(0.2)
            settle_s = time.perf_counter() - settled
            return report(
                "hostile_images",
                {
                    "bomb_png_bytes": len(bomb),
                    "big_png_bytes": len(big),
                    "requests": 16,
                    "answers": dict(answers),
                    "attack_s": round(attack_s, 2),
                    "healthz_calm_ms": round(statistics.median(calm) * 1000, 1),
                    "healthz_worst_during_ms": round(max(during) * 1000, 1) if during else None,
                    "web_rss_mb_before": rss_before,
                    "web_rss_mb_peak": max(peak),
                    "web_rss_mb_after": _rss_mb(web),
                    "back_within_100_mb_s": round(settle_s, 1),
                },
            )
        finally:
            site.close()


if __name__ == "__main__":
    main()
