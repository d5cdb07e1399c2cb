"""Training runs, the model versions they produce, and the feature cache."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import models, transaction

from classifier.evaluation import EvaluationKind, evaluation_kind
from webui.jobs.models import Job
from webui.projects.models import Project

log = logging.getLogger(__name__)


class TrainingRun(Job):
    """One request to train; a worker turns it into a ModelVersion or a readable failure."""

    noun = "training run"
    task = "webui.training.tasks.train"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    params = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["project", "status"])]

    def __str__(self) -> str:
        return f"Run {self.pk} of {self.project} ({self.status})"


class ArtifactInUse(Exception):
    """The version serves predictions (or nothing else could serve); it cannot be removed."""


class ModelVersion(models.Model):
    """An immutable, numbered result of training; the project's serving pointer picks one."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    run = models.OneToOneField(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="model_version"
    )
    # Storage prefix holding manifest.json, the head weights and model.onnx.
    artifact = models.CharField(max_length=255)
    backbone = models.CharField(max_length=64)
    strategy = models.CharField(max_length=16, blank=True)
    labels = models.JSONField(default=list)
    metrics = models.JSONField(default=dict, blank=True)
    fingerprint = models.CharField(max_length=64, blank=True, db_index=True)
    size = models.PositiveBigIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    # The one thing about a version that may change after training: answer only when at least this
    # sure, else "not sure" (webui/training/thresholds.py); None answers always. Each change is a
    # ServingEvent.
    answer_threshold = models.FloatField(null=True, blank=True)
    # Multi-label versions: {label: threshold} a person set instead of the trained one
    # (webui/training/label_thresholds.py); labels not named keep the trained threshold.
    label_thresholds = models.JSONField(default=dict, blank=True)
    # What it learned from: [sha256, label] per image, labels as they were then (a dataset export can
    # give back exactly this training set). Empty for versions made before it was kept.
    learned = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [models.UniqueConstraint(fields=["project", "number"], name="unique_version_number")]

    def __str__(self) -> str:
        return f"{self.project} v{self.number}"

    @property
    def accuracy(self) -> float | None:
        return self.metrics.get("accuracy")

    @property
    def multi_label(self) -> bool:
        return self.metrics.get("task_type") == "multi_label"

    @property
    def score(self) -> float | None:
        """The figure versions are compared by on the pages: accuracy, or for a multi-label version its
        mean average precision (`score_name` says which)."""
        return self.metrics.get("mean_average_precision" if self.multi_label else "accuracy")

    @property
    def score_name(self) -> str:
        return "mean average precision" if self.multi_label else "accuracy"

    # One definition each of a version's image counts, for every page and the admin. The engine records
    # n_train (what the model you use learned from: every labelled image, test images included, since it
    # is refitted on all of them) and n_val (the test images it was scored on, before that refit).

    @property
    def images_learned(self) -> int | None:
        """Images the served model learned from."""
        return self.metrics.get("n_train")

    @property
    def cross_validated(self) -> bool:
        return evaluation_kind(self.metrics or {}) == EvaluationKind.CROSS_VALIDATION

    @property
    def images_scored(self) -> int | None:
        """Images its scores come from: the test images, or every image when cross-validated."""
        if self.cross_validated:
            return self.metrics.get("n_train")
        return self.metrics.get("n_val") or None

    @property
    def images_scoring_model_learned(self) -> int | None:
        """What the model that was scored learned from (the test images held back), for a held-out score."""
        learned, scored = self.images_learned, self.metrics.get("n_val")
        kind = evaluation_kind(self.metrics or {})
        if learned is None or not scored or kind == EvaluationKind.CROSS_VALIDATION:
            return None
        if kind == EvaluationKind.VALIDATION_SET:  # a separate folder: nothing was refitted
            return learned
        return max(learned - scored, 0)

    @property
    def is_serving(self) -> bool:
        return Project.objects.filter(pk=self.project_id, serving_version=self).exists()

    def artifact_files(self) -> list[str]:
        try:
            _dirs, files = default_storage.listdir(self.artifact)
        except FileNotFoundError:
            return []
        return [f"{self.artifact}/{name}" for name in files]

    def promote(self, user=None, *, action: str = "promote", local_copy=None) -> None:
        """Make this version the one that serves; a single UPDATE, so no request sees half a switch.

        Args:
            local_copy: a directory holding the very files just stored for this version (the worker's
                own output), checked instead of downloading them again from remote storage.
        """
        from webui.training.artifacts import check_artifact

        check_artifact(self, local_copy)  # refuse a broken artifact before anything serves it
        with transaction.atomic():
            project = Project.objects.select_for_update().get(pk=self.project_id)
            previous_id = project.serving_version_id
            Project.objects.filter(pk=self.project_id).update(serving_version=self)
            ServingEvent.objects.create(
                project_id=self.project_id, version=self, previous_id=previous_id, action=action, user=user
            )

    def delete(self, *args, **kwargs):
        """Delete a version that does not serve, and its artifact once the row is gone."""
        if self.is_serving:
            raise ArtifactInUse(f"{self} is the serving version; promote another version first")
        files = self.artifact_files() + [e.file for e in self.exports.exclude(file="")]
        result = super().delete(*args, **kwargs)
        transaction.on_commit(lambda: _remove_files(files))
        return result


def _remove_files(paths: list[str]) -> None:
    for path in paths:
        try:
            default_storage.delete(path)
        except OSError:
            log.warning("could not remove artifact file %s", path, exc_info=True)


def rollback(project: Project, user=None) -> ModelVersion:
    """Serve again the version that served before the current one was promoted."""
    current = project.serving_version
    if current is None:
        raise ArtifactInUse("nothing serves yet, so there is nothing to roll back")
    event = (
        ServingEvent.objects.filter(
            project=project, version=current, action="promote", previous__isnull=False
        )
        .order_by("-created", "-id")
        .first()
    )
    target = event.previous if event else None
    if target is None:
        target = project.versions.filter(number__lt=current.number).order_by("-number").first()
    if target is None:
        raise ArtifactInUse(f"v{current.number} is the first version; there is nothing to roll back to")
    target.promote(user, action="rollback")
    project.refresh_from_db(fields=["serving_version"])
    return target


class ServingEvent(models.Model):
    """Who switched the serving version, or changed how a version answers, and when; rollback walks
    the switches ("promote" and "rollback")."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="serving_events")
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    previous = models.ForeignKey(
        ModelVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=16)
    detail = models.CharField(max_length=200, blank=True)  # for "threshold": what it became
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.version} (was {self.previous})"


class FeatureVector(models.Model):
    """Cached backbone output for one image's bytes, shared by every worker and every retrain."""

    backbone_id = models.CharField(max_length=128)
    sha256 = models.CharField(max_length=64)
    vector = models.BinaryField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["backbone_id", "sha256"], name="unique_feature")]

    def __str__(self) -> str:
        return f"{self.backbone_id}:{self.sha256[:12]}"


class WorkerPresence(models.Model):
    """A worker process that trains, as it last said (webui/training/workers.py): starting while it loads
    the network, then ready; `seen_at` moves on while it lives."""

    STARTING, READY = "starting", "ready"

    name = models.CharField(max_length=200, unique=True)  # host:pid of the process that trains
    phase = models.CharField(max_length=16, choices=[(STARTING, "starting"), (READY, "ready")])
    detail = models.CharField(max_length=300, blank=True)
    started_at = models.DateTimeField()
    seen_at = models.DateTimeField(db_index=True)
    warm_up_seconds = models.FloatField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.phase})"


class VersionExport(Job):
    """A version written in another format (classifier/exporting) by a worker, checked, zipped and stored.

    One finished or live export per version and format is enough: asking again returns it; a failed
    one may be asked for again.
    """

    noun = "export"
    task = "webui.training.tasks.export"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="exports")
    format = models.CharField(max_length=16)
    # The zip in storage, once it succeeded, and its size in bytes.
    file = models.CharField(max_length=255, blank=True)
    size = models.PositiveBigIntegerField(default=0)
    # How its answers compared with the version's (classifier.exporting.parity.Parity.to_dict()).
    parity = models.JSONField(default=dict, blank=True)

    class Meta(Job.Meta):
        indexes = [models.Index(fields=["version", "format"])]

    def __str__(self) -> str:
        return f"{self.format} export of {self.version} ({self.status})"
