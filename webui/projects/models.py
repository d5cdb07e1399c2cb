"""Projects, their members, labels and images."""

from __future__ import annotations

import uuid
from pathlib import PurePosixPath

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower
from django.urls import reverse

from webui.jobs.models import Job


class Role(models.TextChoices):
    """What a member may do: owners manage members and delete, editors change data, viewers read."""

    OWNER = "owner", "Owner"
    EDITOR = "editor", "Editor"
    VIEWER = "viewer", "Viewer"


class TaskType(models.TextChoices):
    """What a project's model answers: one label per picture, or which of the labels are in it."""

    SINGLE_LABEL = "single_label", "One label per picture"
    MULTI_LABEL = "multi_label", "Any of the labels per picture (several, or none)"


def _default_backbone() -> str:
    return settings.PINHOLE_DEFAULT_BACKBONE


class Project(models.Model):
    """One question asked of a set of images; everything else hangs off a project."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="owned_projects"
    )
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="projects", blank=True
    )
    task_type = models.CharField(max_length=32, choices=TaskType.choices, default=TaskType.SINGLE_LABEL)
    backbone = models.CharField(max_length=64, default=_default_backbone)
    auto_promote = models.BooleanField(
        default=True, help_text="Serve a new version automatically when it beats the serving one."
    )
    # Which answered photos are kept for the review queue (webui/serving/records.py): the ones the
    # model was unsure of, sent by members (try-it, API) or by share-page visitors; and for how long.
    keep_member_photos = models.BooleanField(default=True)
    keep_share_photos = models.BooleanField(default=False)
    keep_photos_days = models.PositiveIntegerField(default=30)
    # PROTECT: the serving version cannot be deleted out from under the site.
    serving_version = models.ForeignKey(
        "training.ModelVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("projects:detail", args=[self.pk])

    def role_for(self, user) -> Role | None:
        """The user's role here, or None for a stranger (and for anonymous users)."""
        if not user.is_authenticated:
            return None
        if user.pk == self.owner_id:
            return Role.OWNER
        role = Membership.objects.filter(project=self, user=user).values_list("role", flat=True).first()
        return Role(role) if role else None

    def can_edit(self, user) -> bool:
        return self.role_for(user) in (Role.OWNER, Role.EDITOR)

    @property
    def multi_label(self) -> bool:
        return self.task_type == TaskType.MULTI_LABEL


class Membership(models.Model):
    """Sharing a project with a teammate, with a role that bounds what they can do."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.VIEWER)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "user"], name="unique_member")]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) in {self.project}"


LABEL_COLOURS = ["#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"]


class Label(models.Model):
    """A class the model learns to tell apart; names are unique per project, ignoring case."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="labels")
    name = models.CharField(max_length=100)
    colour = models.CharField(max_length=7, default="#2563eb")
    order = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["order", "name"]
        constraints = [
            models.UniqueConstraint(Lower("name"), "project", name="unique_label_name_per_project"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs):
        if self._state.adding and not self.order and self.project_id:
            taken = self.project.labels.count()
            self.order = taken
            if self.colour == "#2563eb":
                self.colour = LABEL_COLOURS[taken % len(LABEL_COLOURS)]
        super().save(*args, **kwargs)


class SplitHint(models.TextChoices):
    """Where an image goes when a model is evaluated: chosen by content hash, or pinned by a person."""

    AUTO = "auto", "Automatic"
    TRAIN = "train", "Always train"
    TEST = "test", "Always test"


def image_storage_key(instance: Image, filename: str) -> str:
    # The uploaded name never reaches storage: it may be hostile (../../x, NUL, RTL override).
    extension = PurePosixPath(filename).suffix.lower().lstrip(".")
    if extension not in {"jpg", "png", "webp", "gif", "bmp"}:
        extension = "bin"
    return f"projects/{instance.project_id}/images/{uuid.uuid4().hex}.{extension}"


def unlabel_on_delete(collector, field, sub_objs, using):
    """on_delete for Image.label: its pictures become unlabeled (label and labeled_at both cleared),
    whoever deletes the label (a page, the API, the admin)."""
    collector.add_field_update(field, None, sub_objs)
    collector.add_field_update(sub_objs.model._meta.get_field("labeled_at"), None, sub_objs)


# A picture is labelled when a person said what it shows. Single-label: it has its `label`.
# Multi-label: `labeled_at` is set, and its `labels` are the ones in it; none of them is an answer too
# ("none of these"), which differs from not labelled yet. Clearing a label clears labeled_at with it
# (labels.set_label, labels.clear_labels, unlabel_on_delete).
UNLABELED = models.Q(label__isnull=True, labeled_at__isnull=True)


class ImageQuerySet(models.QuerySet):
    def labelled(self):
        return self.exclude(UNLABELED)

    def unlabeled(self):
        return self.filter(UNLABELED)


class Image(models.Model):
    """One uploaded picture; the same bytes twice in a project are one image."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="images")
    file = models.FileField(upload_to=image_storage_key, max_length=255)
    original_name = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    format = models.CharField(max_length=8)
    size = models.PositiveBigIntegerField(default=0)
    label = models.ForeignKey(
        Label, on_delete=unlabel_on_delete, null=True, blank=True, related_name="images"
    )
    # Multi-label projects: the labels in the picture (single-label projects use `label`).
    labels = models.ManyToManyField(Label, blank=True, related_name="tagged_images")
    split = models.CharField(max_length=8, choices=SplitHint.choices, default=SplitHint.AUTO)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    labeled_at = models.DateTimeField(null=True, blank=True)

    objects = ImageQuerySet.as_manager()

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [models.UniqueConstraint(fields=["project", "sha256"], name="unique_image_per_project")]
        indexes = [models.Index(fields=["project", "label"])]

    def __str__(self) -> str:
        return self.original_name or self.sha256[:12]

    @property
    def is_labelled(self) -> bool:
        return self.label_id is not None or self.labeled_at is not None

    @property
    def label_text(self) -> str:
        """Its label, or its labels ("none of these" when a person said so), or "no label"."""
        if self.project.multi_label and self.labeled_at is not None:
            return ", ".join(label.name for label in self.labels.all()) or "none of these"
        return self.label.name if self.label_id else "no label"

    @property
    def is_test(self) -> bool:
        """Frozen evaluation split: stable across retrains so versions compare on the same images."""
        if self.split == SplitHint.TEST:
            return True
        if self.split == SplitHint.TRAIN:
            return False
        return int(self.sha256[:8], 16) % 5 == 0


class ZipImport(Job):
    """A zip archive of pictures being imported by a worker: the request stores the archive (checked
    from its central directory first), the worker ingests its entries one by one."""

    noun = "zip import"
    task = "webui.projects.tasks.import_zip"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="zip_imports")
    archive = models.CharField(max_length=255, help_text="Storage name of the archive until it is imported.")
    name = models.CharField(max_length=255, help_text="The archive's file name as uploaded.")
    size = models.PositiveBigIntegerField(default=0)
    entries = models.PositiveIntegerField(default=0, help_text="Image candidates in the archive.")
    # How far the import got, saved as it goes so a worker taking over continues where it stopped.
    processed = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    created_unlabeled = models.PositiveIntegerField(
        default=0, help_text="Of those, how many came with no label."
    )
    duplicates = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(
        default=0, help_text="Folders and system files (.DS_Store, __MACOSX/)."
    )
    rejected = models.JSONField(default=list, blank=True)  # [{name, error}]
    labels = models.JSONField(default=list, blank=True)  # label names the folders gave

    def __str__(self) -> str:
        return f"Import of {self.name} into {self.project} ({self.status})"

    def as_status(self) -> dict:
        return {
            **super().as_status(),
            "name": self.name,
            "entries": self.entries,
            "processed": self.processed,
            "created": self.created_count,
            "unlabeled": self.created_unlabeled,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "labels": self.labels,
            "skipped": self.skipped,
        }
