"""Training workflows: where the ORM meets the engine.

`start_training` validates and queues a run (or reuses an identical finished one); `run_training`,
called by the worker, claims the run, extracts only uncached features, trains, stores the artifact,
numbers the version and decides whether it serves. Views, the API and the admin call these and the
model methods; tasks.py only turns ids into calls.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
import threading
import uuid
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Max

from classifier.errors import Cancelled, ClassifierError, TrainingError
from classifier.progress import ProgressReport
from classifier.strategies import STRATEGY_CHOICES
from webui.jobs import lifecycle
from webui.jobs.models import JobStatus
from webui.lib.backbones import backbone_dir
from webui.lib.numbers import percent_text
from webui.projects.models import Image, Project
from webui.training import answers, multilabel
from webui.training.artifacts import artifact_prefix, store_artifact
from webui.training.featurecache import DatabaseFeatureCache
from webui.training.models import ModelVersion, TrainingRun
from webui.training.refusals import TrainingRefused

log = logging.getLogger(__name__)


# --- starting -------------------------------------------------------------------------------------


def training_set(project: Project) -> list[Image]:
    """Labelled images of a project, in a stable order."""
    if project.multi_label:
        return multilabel.training_set(project)
    return list(project.images.labelled().select_related("label").order_by("sha256"))


def check_ready(project: Project, images: list[Image] | None = None) -> dict[str, int]:
    """Images per label; raises TrainingRefused with exactly what is missing."""
    images = training_set(project) if images is None else images
    if project.multi_label:
        return multilabel.check_ready(project, images)
    counts = Counter(image.label.name for image in images)
    for label in project.labels.all():
        counts.setdefault(label.name, 0)
    populated = {name: n for name, n in counts.items() if n > 0}
    if len(populated) < 2:
        have = ", ".join(f"'{name}' has {n}" for name, n in sorted(counts.items())) or "no labels yet"
        raise TrainingRefused(f"a model needs at least two labels with images; {have}")
    short = [f"'{name}' has {n}" for name, n in sorted(populated.items()) if n < 2]
    if short:
        raise TrainingRefused("each label needs at least 2 images; " + ", ".join(short))
    return populated


def normalise_params(project: Project, params: dict | None) -> dict:
    """Backbone and strategy with defaults filled in; unknown values refused with the choices."""
    from classifier.backbones import BACKBONES

    params = dict(params or {})
    backbone = params.get("backbone") or project.backbone
    if backbone not in BACKBONES:
        raise TrainingRefused(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
    strategy = params.get("strategy") or "auto"
    if strategy not in STRATEGY_CHOICES:
        raise TrainingRefused(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGY_CHOICES)}")
    if project.multi_label and strategy not in ("auto", "linear"):
        raise TrainingRefused(
            f"projects whose pictures may have several labels train linear heads; the {strategy} strategy "
            "(adapting the network) is for one label per picture"
        )
    seed = params.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**31:
        raise TrainingRefused("seed must be a whole number from 0 to 2147483647")
    return {"backbone": backbone, "strategy": strategy, "seed": seed}


def fingerprint(params: dict, images: list[Image], *, multi_label: bool = False) -> str:
    """Identifies what a run would learn from: the same fingerprint gives the same model."""
    truth = multilabel.names if multi_label else (lambda image: image.label.name)
    payload = {
        "params": params,
        "data": [(image.sha256, truth(image), image.is_test) for image in images],
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def start_training(project: Project, user, params: dict | None = None) -> TrainingRun:
    """Queue a training run, or return the run that already made (or is making) this model.

    Raises:
        TrainingRefused: too few labels or images, unknown backbone or strategy.
    """
    params = normalise_params(project, params)
    images = training_set(project)
    check_ready(project, images)
    print_ = fingerprint(params, images, multi_label=project.multi_label)

    existing = (
        TrainingRun.objects.filter(project=project, fingerprint=print_)
        .filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING, JobStatus.SUCCEEDED])
        .order_by("-created")
        .first()
    )
    if existing and existing.status == JobStatus.RUNNING and lifecycle.is_dead(existing):
        lifecycle.cancel(existing)  # its worker died: end it, and start afresh below
        existing = None
    if existing and (existing.status != JobStatus.SUCCEEDED or _has_version(existing)):
        existing.reused = True
        return existing

    with transaction.atomic():
        run = TrainingRun.objects.create(
            project=project,
            params=params,
            fingerprint=print_,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            message="queued",
        )
        lifecycle.enqueue_on_commit(run)
    run.reused = False
    return run


def _has_version(run: TrainingRun) -> bool:
    return ModelVersion.objects.filter(run=run).exists()


def cancel(run: TrainingRun) -> TrainingRun:
    """Cancel a queued run at once; ask a running one to stop at its next batch."""
    return lifecycle.cancel(run)


# --- running (in the worker) ----------------------------------------------------------------------


class _Progress:
    """The engine's progress consumer: writes each report (the engine throttles them), beats the
    heartbeat, and raises Cancelled when a person asked the run to stop."""

    def __init__(self, run: TrainingRun):
        self.run = run

    def __call__(self, report: ProgressReport) -> None:
        lifecycle.report(self.run, report.fraction, report.message)


def run_training(run_id: int, *, time_limit_errors: tuple[type[BaseException], ...] = ()) -> None:
    """Train a claimed run end to end; every outcome ends in a final state with a readable message.

    Raises:
        lifecycle.NotClaimable: another live worker is training this run.
    """
    run = lifecycle.claim(TrainingRun, run_id, on_give_up=_remove_workdirs)
    if run is None:
        return
    _remove_workdirs(run.pk)
    workdir = Path(tempfile.mkdtemp(prefix=f"pinhole-run{run.pk}-"))
    try:
        with lifecycle.Heartbeat(run):
            version = _train_and_store(run, workdir)
    except Cancelled:
        lifecycle.finish(run, JobStatus.CANCELLED, message="cancelled")
    except (TrainingError, ClassifierError) as exc:
        lifecycle.finish(run, JobStatus.FAILED, error=str(exc))
    except time_limit_errors:
        lifecycle.finish(run, JobStatus.FAILED, error=time_limit_error())
    except Exception as exc:
        log.exception("training run %s failed", run.pk)
        lifecycle.finish(run, JobStatus.FAILED, error=f"internal error ({type(exc).__name__}): {exc}")
    else:
        if version is not None:
            log.info("run %s produced %s", run.pk, version)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _remove_workdirs(run_id: int) -> None:
    # A pool child killed mid-training (SIGKILL, OOM, hard time limit) never reaches its `finally`;
    # whoever holds the run next on this host removes what it left in the temp directory.
    for leftover in Path(tempfile.gettempdir()).glob(f"pinhole-run{run_id}-*"):
        shutil.rmtree(leftover, ignore_errors=True)


def time_limit_error() -> str:
    return (
        f"time limit: training took longer than {settings.CELERY_TASK_SOFT_TIME_LIMIT} s; "
        "use fewer images, the linear strategy, or raise PINHOLE_TASK_SOFT_TIME_LIMIT"
    )


def fail_after_time_limit(run_id: int) -> None:
    """The hard time limit killed the process training this run: record it and clean up."""
    run = TrainingRun.objects.filter(pk=run_id, status=JobStatus.RUNNING).first()
    if run is not None:
        lifecycle.finish(run, JobStatus.FAILED, error=time_limit_error())
    _remove_workdirs(run_id)


def _samples(images: list[Image], workdir: Path) -> list:
    """Engine samples; images are read from local storage in place or fetched lazily."""
    from classifier.data import Sample

    samples = []
    for image in images:
        samples.append(
            Sample(
                key=image.sha256,
                source=_source_for(image.file.name),
                label=image.label.name,
                split="test" if image.is_test else "train",
            )
        )
    return samples


def _source_for(name: str):
    try:
        return Path(default_storage.path(name))
    except NotImplementedError:
        # Object storage: read the bytes only if the engine needs them (not cached yet).
        def read() -> bytes:
            with default_storage.open(name, "rb") as handle:
                return handle.read()

        return read


_extractors: dict[str, object] = {}
_extractors_lock = threading.Lock()


def extractor_for(backbone: str):
    """One Extractor per backbone per worker process: the network loads once and stays."""
    from classifier.features import Extractor

    with _extractors_lock:
        if backbone not in _extractors:
            _extractors[backbone] = Extractor(backbone, onnx_dir=backbone_dir())
        return _extractors[backbone]


def _learned(images: list[Image], metrics: dict) -> list[list[str]]:
    """[sha256, label] of each image the version learned from (those the engine could not read left out)."""
    skipped = {item.get("key") for item in metrics.get("skipped") or [] if isinstance(item, dict)}
    if images and images[0].project.multi_label:
        return [
            [image.sha256, list(multilabel.names(image))] for image in images if image.sha256 not in skipped
        ]
    return [[image.sha256, image.label.name] for image in images if image.sha256 not in skipped]


def _train_and_store(run: TrainingRun, workdir: Path) -> ModelVersion | None:
    from classifier.pipeline import train_model

    project = run.project
    images = training_set(project)
    check_ready_for_run(project, images)
    run.fingerprint = fingerprint(run.params, images, multi_label=project.multi_label)
    TrainingRun.objects.filter(pk=run.pk).update(fingerprint=run.fingerprint)

    progress = _Progress(run)
    common = {
        "backbone": run.params["backbone"],
        "strategy": run.params["strategy"],
        "cache": DatabaseFeatureCache(),
        "seed": run.params.get("seed", 0),
        "fingerprint": run.fingerprint,
        "on_progress": progress,
        "extractor": extractor_for(run.params["backbone"]),
    }
    if project.multi_label:
        from classifier.multilabel_train import train_multilabel

        labels = [label.name for label in project.labels.all()]
        samples = multilabel.samples(images, _source_for)
        outcome = train_multilabel(samples, workdir / "artifact", labels=labels, **common)
    else:
        labels = [label.name for label in project.labels.all() if any(i.label_id == label.pk for i in images)]
        outcome = train_model(
            _samples(images, workdir), workdir / "artifact", labels=labels, holdout="given", **common
        )
    progress(ProgressReport("write", 0.97, "saving the model"))
    prefix = artifact_prefix(project.pk, f"run{run.pk}-{uuid.uuid4().hex[:12]}")
    try:
        size = store_artifact(outcome.path, prefix)
        with transaction.atomic():
            locked = Project.objects.select_for_update().get(pk=project.pk)
            number = (locked.versions.aggregate(n=Max("number"))["n"] or 0) + 1
            version = ModelVersion.objects.create(
                project=locked,
                number=number,
                run=run,
                artifact=prefix,
                backbone=run.params["backbone"],
                strategy=outcome.metrics.get("strategy", ""),
                labels=outcome.manifest["labels"],
                metrics=outcome.metrics,
                fingerprint=run.fingerprint,
                size=size,
                learned=_learned(images, outcome.metrics),
            )
            # Decided before the run says "succeeded": whoever polls the run and then predicts gets
            # the version that serves after this training, never the one before it.
            promote_if_better(version, outcome)
            run.transition(
                JobStatus.SUCCEEDED,
                expect=JobStatus.RUNNING,
                progress=1.0,
                message=f"done: v{number}",
                metrics=version.metrics,
            )
    except BaseException:
        # Nothing refers to these files: a failed save leaves no half-written version visible.
        _delete_prefix(prefix)
        raise
    return version


def check_ready_for_run(project: Project, images: list[Image]) -> None:
    try:
        check_ready(project, images)
    except TrainingRefused as exc:
        raise TrainingError(f"{exc} (the data changed after the run was queued)") from None


def _delete_prefix(prefix: str) -> None:
    try:
        _dirs, files = default_storage.listdir(prefix)
    except (FileNotFoundError, OSError):
        return
    for name in files:
        try:
            default_storage.delete(f"{prefix}/{name}")
        except OSError:
            log.warning("could not remove %s/%s", prefix, name)


# --- promotion ------------------------------------------------------------------------------------


def promote_if_better(version: ModelVersion, outcome=None) -> tuple[bool, str]:
    """Serve a new version when nothing serves, or when it scores at least as well as the serving one.

    Both are scored on the same held-out images (`answers.compare`); versions without
    shared test images fall back to the balanced accuracy each recorded. A tie goes to the new version:
    its served model learned from at least as many labelled images.
    """
    project = Project.objects.get(pk=version.project_id)
    serving = project.serving_version
    promote, reason = False, ""
    if not project.auto_promote:
        reason = "auto-promote is off for this project; promote it by hand"
    elif serving is None:
        promote, reason = True, "the first version of this project"
    elif set(serving.labels) != set(version.labels):
        promote, reason = True, "the labels changed, so the serving version cannot answer this question"
    elif project.multi_label:
        promote, reason = multilabel.compare(version, serving)
    else:
        compared = answers.compare(serving, version, only_held_out=True)
        if compared.shared:
            new, old, n = compared.accuracy_b, compared.accuracy_a, compared.shared
            where = f"on the {n} test image{'s' if n != 1 else ''} both were scored on"
        else:
            new, old = version.metrics.get("balanced_accuracy"), serving.metrics.get("balanced_accuracy")
            where = "on their own test images"
        if new is None or old is None:
            reason = "no test score to compare; promote it by hand"
        elif new >= old:
            promote, reason = (
                True,
                f"balanced accuracy {percent_text(new)} vs {percent_text(old)} for v{serving.number} {where}",
            )
        elif percent_text(old) == percent_text(new):  # never "scored better (96% vs 96%)"
            reason = f"v{serving.number} scored slightly better {where} (both about {percent_text(old)})"
        else:
            reason = f"v{serving.number} scored better {where} ({percent_text(old)} vs {percent_text(new)})"
    if promote:
        # The worker's own output is the uploaded files: checked here without downloading them again.
        version.promote(action="auto-promote", local_copy=outcome.path if outcome is not None else None)
    metrics = dict(version.metrics, promotion={"promoted": promote, "reason": reason})
    ModelVersion.objects.filter(pk=version.pk).update(metrics=metrics)
    version.metrics = metrics
    return promote, reason
