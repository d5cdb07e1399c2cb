"""One progress bar over the planned steps: monotonic, throttled, with the stage in every report."""

from __future__ import annotations

import pytest

from classifier.progress import Progress


def test_it_maps_each_step_onto_its_share_of_the_bar():
    seen = []
    progress = Progress(seen.append, ["extract", "fit"], weights={"extract": 3.0, "fit": 1.0}, min_interval=0)
    progress.step("extract")(0.5, "extracting 5/10")
    progress.step("fit")(1.0, "head trained")
    assert [(r.stage, r.fraction, r.message) for r in seen] == [
        ("extract", 0.375, "extracting 5/10"),
        ("fit", 1.0, "head trained"),
    ]


def test_it_never_moves_backwards():
    seen = []
    progress = Progress(seen.append, ["extract", "fit"], min_interval=0)
    progress.step("fit")(0.5, "fitting")
    progress.step("extract")(0.1, "a late report of an earlier step")
    assert seen[1].fraction == seen[0].fraction


def test_it_throttles_within_a_step_but_not_across_steps_or_at_their_end():
    seen = []
    progress = Progress(seen.append, ["extract", "fit"], min_interval=60)
    extract = progress.step("extract")
    extract(0.1, "extracting 1/100")
    extract(0.2, "extracting 2/100")  # same step within the interval: dropped
    extract(1.0, "extracting 100/100")  # a step's end always goes through
    progress.step("fit")(0.0, "training the classifier head")  # so does a new step
    assert [r.message for r in seen] == [
        "extracting 1/100",
        "extracting 100/100",
        "training the classifier head",
    ]


def test_it_lets_a_cancelling_consumer_stop_the_work():
    class Stop(Exception):
        pass

    def consumer(report):
        raise Stop(report.stage)

    with pytest.raises(Stop, match="extract"):
        Progress(consumer, ["extract"]).step("extract")(0.0, "extracting")


def test_it_refuses_a_step_it_did_not_plan():
    with pytest.raises(ValueError, match="planned: extract"):
        Progress(None, ["extract"]).step("export")
