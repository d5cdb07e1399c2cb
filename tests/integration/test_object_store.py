"""Images, model versions and batch results in an S3-compatible store, over its HTTP protocol.

The web host (this process) and a worker with its own empty data directory share the database, the
broker and a bucket on the test's S3 server (object_store.py), nothing else.
"""

from __future__ import annotations

import pytest
from itest import BLUE, RED, post_train, predict, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


@pytest.mark.timeout(240)
def test_a_worker_trains_from_the_bucket_and_the_site_serves_from_it(
    object_store, broker, start_worker, api, labelled_project, data_dir, tmp_path
):
    images = object_store.keys(f"projects/{labelled_project}/images/")
    assert len(images) == 12 and all(key.endswith(".png") for key in images)
    assert files_under(data_dir / "media") == []  # the web host kept no copy

    worker_host = tmp_path / "worker-host"
    worker_host.mkdir()
    worker = start_worker(broker, PINHOLE_DATA_DIR=str(worker_host), **object_store.env)
    run = wait_for_run(api, post_train(api, labelled_project)["id"], {"succeeded", "failed"}, worker)
    assert run["status"] == "succeeded", run["error"] or worker.log()

    version = object_store.keys(f"projects/{labelled_project}/versions/")
    names = {key.rsplit("/", 1)[1] for key in version}
    assert {"manifest.json", "model.onnx"} <= names, version
    # The worker read the photos from the bucket and wrote nothing of the project on its own disk.
    assert not [f for f in files_under(worker_host) if f.endswith((".png", ".onnx", ".json"))]

    # The web host downloads the version from the bucket into its model cache to serve it.
    for colour, label in ((RED, "red"), (BLUE, "blue")):
        response = predict(api, labelled_project, colour)
        assert response.status_code == 200, response.json()
        assert response.json()["label"] == label

    # Deleting an image deletes its object.
    listed = api.get(f"/api/v1/projects/{labelled_project}/images/").json()
    first = (listed["results"] if isinstance(listed, dict) else listed)[0]
    assert api.delete(f"/api/v1/images/{first['id']}/").status_code == 204
    assert len(object_store.keys(f"projects/{labelled_project}/images/")) == 11
