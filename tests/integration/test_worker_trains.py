"""A real worker trains what the API queued, on Redis and on the embedded SQLite broker."""

from __future__ import annotations

import pytest
from itest import BLUE, RED, post_train, predict, wait_for_run

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.timeout(180)
def test_it_trains_through_a_worker_and_predicts(any_broker, start_worker, api, labelled_project):
    worker = start_worker(any_broker)
    queued = post_train(api, labelled_project)
    assert queued["status"] == "queued"

    run = wait_for_run(api, queued["id"], {"succeeded", "failed"}, worker)
    assert run["status"] == "succeeded", run["error"] or worker.log()
    assert run["model_version"] == 1
    # The worker loaded the network as it started, and said so (webui/training/workers.py).
    from webui.training.models import WorkerPresence

    [presence] = WorkerPresence.objects.filter(
        name__regex=rf":({'|'.join(map(str, worker.pool_children()))})$"
    )
    assert presence.phase == WorkerPresence.READY and presence.warm_up_seconds is not None, presence.detail

    for colour, label in ((RED, "red"), (BLUE, "blue")):
        response = predict(api, labelled_project, colour)
        assert response.status_code == 200, response.json()
        assert response.json()["label"] == label
        assert response.json()["model_version_id"] == run["model_version_id"]
