"""How long every page of the site takes to answer, with 500 pictures waiting for a label.

`make run`'s web server (gunicorn) and one worker on a fresh data directory: a project with 24
labelled hymenoptera photos and a trained model, then 500 more pictures without a label. Signs in
through the login form and asks each page three times: the first visit (nothing cached) and the best
of the next two. Targets (issue 13): every page within 300 ms; Unlabeled and Suggested within 1 s on
the first visit.
    .venv/bin/python -m bench.page_times
"""

from __future__ import annotations

import io
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from PIL import Image

from bench.api_pipeline import Site, _train_until_served, _upload
from bench.common import report, require_dataset

UNLABELED = 500


def _noise_jpegs(n: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8)).save(buffer, format="JPEG")
        out.append(buffer.getvalue())
    return out


def main() -> dict:
    root = require_dataset()
    with tempfile.TemporaryDirectory() as scratch:
        site = Site(Path(scratch))
        try:
            project = site.api("POST", "projects/", json={"name": "pages", "labels": ["ants", "bees"]})["id"]
            for label in ("ants", "bees"):
                _upload(site, project, sorted((root / "train" / label).iterdir())[:12], label)
            _train_until_served(site, project)
            pictures = _noise_jpegs(UNLABELED)
            for start in range(0, UNLABELED, 100):
                files = [
                    ("files", (f"n{start + i}.jpg", data))
                    for i, data in enumerate(pictures[start : start + 100])
                ]
                site.api("POST", f"projects/{project}/images/", files=files)
            browser = requests.Session()
            form = browser.get(f"{site.base}/accounts/login/").text
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
            browser.post(
                f"{site.base}/accounts/login/",
                data={"username": "bench", "password": "bench-password-123", "csrfmiddlewaretoken": token},
            )
            pages = {
                "unlabeled": f"/projects/{project}/label/?show=unlabeled",
                "suggested": f"/projects/{project}/label/?show=suggested",
                "projects": "/projects/",
                "overview": f"/projects/{project}/",
                "upload": f"/projects/{project}/upload/",
                "label": f"/projects/{project}/label/",
                "train": f"/projects/{project}/train/",
                "versions": f"/projects/{project}/versions/",
                "results": f"/projects/{project}/versions/1/",
                "compare": f"/projects/{project}/versions/compare/",
                "try": f"/projects/{project}/try/",
                "share": f"/projects/{project}/share/",
                "settings": f"/projects/{project}/settings/",
                "api_tokens": "/accounts/tokens/",
                "api_docs": "/api/v1/docs/",
            }
            times = {}
            for name, path in pages.items():
                taken = []
                for _ in range(3):
                    started = time.perf_counter()
                    response = browser.get(site.base + path, timeout=60)
                    taken.append(time.perf_counter() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"{path}: {response.status_code}")
                times[name] = {"first_ms": round(taken[0] * 1000), "then_ms": round(min(taken[1:]) * 1000)}
            worst = max(t["then_ms"] for t in times.values())
            return report(
                "page_times",
                {
                    "unlabeled_pictures": UNLABELED,
                    "pages": times,
                    "worst_page_ms": worst,
                    "worst_first_visit_ms": max(t["first_ms"] for t in times.values()),
                },
            )
        finally:
            site.close()


if __name__ == "__main__":
    main()
