"""Suggestions: the label the serving version would give each unlabeled picture, worked out by a worker.

Pages read stored `Suggestion` rows only. When pictures lack one, `request_refresh` queues a
`SuggestionRefresh` (one live refresh per version), and a worker runs the version over them in chunks;
no request ever runs the model over hundreds of pictures. Rows are per version and content hash, so a
picture is looked at once per version, whoever asks.

The same refresh then orders the unlabeled pictures for "label next" (`rank`, with
classifier.selection): the pictures a label would teach the version most come first. Pages and the API
read the stored order (`ordered_next`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import F, OuterRef, Subquery

from classifier.errors import Cancelled
from classifier.selection import order_to_label
from webui.jobs import lifecycle
from webui.jobs.models import LIVE_STATES, JobStatus
from webui.serving.models import Suggestion, SuggestionRefresh
from webui.serving.services import predict_stored, predictor_for

log = logging.getLogger(__name__)

CHUNK = 32


def stored(version, images) -> dict[int, dict]:
    """The stored suggestions of `version` for these images: {image id: {label, probability, unknown}}.
    Images without one (not worked out yet, or unreadable) are left out."""
    images = list(images)
    rows = Suggestion.objects.filter(
        version=version, sha256__in=[image.sha256 for image in images], readable=True
    )
    by_hash = {row.sha256: {**row.as_dict(), "sureness": row.sureness()} for row in rows}
    return {image.pk: dict(by_hash[image.sha256]) for image in images if image.sha256 in by_hash}


def _without_suggestion(version):
    done = Suggestion.objects.filter(version=version).values("sha256")
    return version.project.images.unlabeled().exclude(sha256__in=done).order_by("-created", "-id")


def request_refresh(version, user=None) -> SuggestionRefresh | None:
    """The live refresh of this version's suggestions, queued now if unlabeled pictures lack one.

    Returns:
        The queued or running refresh, or None when every unlabeled picture has its suggestion.
    """
    live = SuggestionRefresh.objects.filter(version=version, status__in=LIVE_STATES).first()
    if live is not None or not _without_suggestion(version).exists():
        return live
    with transaction.atomic():
        job = SuggestionRefresh.objects.create(
            project_id=version.project_id,
            version=version,
            created_by=user if getattr(user, "is_authenticated", False) else None,
            message="waiting for a worker",
        )
        lifecycle.enqueue_on_commit(job)
    return job


def run_refresh(job_id: int) -> None:
    """Work out the version's suggestions for every unlabeled picture that has none, newest first.

    Raises:
        lifecycle.NotClaimable: another live worker is on this refresh.
    """
    job = lifecycle.claim(SuggestionRefresh, job_id)
    if job is None:
        return
    job = SuggestionRefresh.objects.select_related("version__project").get(pk=job.pk)
    version = job.version
    todo = list(_without_suggestion(version))
    try:
        with lifecycle.Heartbeat(job):
            for start in range(0, len(todo), CHUNK):
                chunk = todo[start : start + CHUNK]
                rows = [
                    Suggestion(
                        version=version,
                        sha256=image.sha256,
                        label=answer.get("label", ""),
                        probability=answer.get("probability", 0.0),
                        unknown=answer.get("unknown", False),
                        readable="error" not in answer,
                        uncertainty=answer.get("uncertainty", 0.0),
                        embedding=_packed(answer.get("embedding")),
                        **_multi_label(answer),
                    )
                    for image, answer in zip(
                        chunk, predict_stored(version, chunk, for_labelling=True), strict=True
                    )
                ]
                Suggestion.objects.bulk_create(rows, ignore_conflicts=True)
                done = start + len(chunk)
                lifecycle.report(job, 0.95 * done / len(todo), f"{done} of {len(todo)} pictures")
            lifecycle.report(job, 0.95, "ordering the pictures to label next")
            rank(version)
    except Cancelled:
        lifecycle.finish(job, JobStatus.CANCELLED, message="cancelled")
        return
    except Exception as exc:
        log.exception("suggestion refresh %s failed", job_id)
        lifecycle.finish(job, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
        return
    lifecycle.finish(job, JobStatus.SUCCEEDED, progress=1.0, message=f"{len(todo)} pictures looked at")


def _multi_label(answer: dict) -> dict:
    """A multi-label answer's probabilities and present labels, as Suggestion stores them."""
    if "labels" not in answer:
        return {}
    return {
        "probabilities": {row["label"]: row["probability"] for row in answer["labels"]},
        "present": [row["label"] for row in answer["labels"] if row["present"]],
    }


def _packed(embedding) -> bytes:
    return b"" if embedding is None else np.asarray(embedding, dtype=np.float16).tobytes()


def rank(version) -> int:
    """Store the order in which the project's unlabeled pictures are best labelled, for this version.

    The references are the version's training pictures (its unknown detector's) and the pictures
    labelled since that have a row. Pictures without a usable row keep no rank (they come last).

    Returns:
        How many pictures were ranked.
    """
    project = version.project
    unlabeled = set(project.images.unlabeled().values_list("sha256", flat=True))
    rows = list(
        Suggestion.objects.filter(version=version, readable=True)
        .exclude(embedding=b"")
        .values_list("pk", "sha256", "uncertainty", "embedding")
    )
    candidates = [row for row in rows if row[1] in unlabeled]
    labelled_since = [row for row in rows if row[1] not in unlabeled]
    Suggestion.objects.filter(version=version, next_rank__isnull=False).update(next_rank=None)
    if not candidates:
        return 0
    embed = [np.frombuffer(bytes(row[3]), dtype=np.float16) for row in candidates + labelled_since]
    references = predictor_for(version).references()
    width = len(embed[0])
    if references.size and references.shape[1] != width:
        references = np.zeros((0, width), np.float32)  # a version whose detector reads another width
    features = np.vstack([np.asarray(embed, dtype=np.float32), references])
    labelled = np.arange(len(features)) >= len(candidates)
    unsure = np.zeros(len(features))
    unsure[: len(candidates)] = [row[2] for row in candidates]
    order = order_to_label(features, labelled, unsure)
    ranked = [Suggestion(pk=candidates[i][0], next_rank=place) for place, i in enumerate(order)]
    Suggestion.objects.bulk_update(ranked, ["next_rank"], batch_size=500)
    return len(ranked)


def ordered_next(version, images):
    """`images` (a queryset of one project's images) in "label next" order for `version`: ranked
    pictures first, best first; the rest after them, newest first."""
    place = Suggestion.objects.filter(version=version, sha256=OuterRef("sha256")).values("next_rank")[:1]
    return images.annotate(next_rank=Subquery(place)).order_by(
        F("next_rank").asc(nulls_last=True), "-created", "-id"
    )


@dataclass
class Accepted:
    labelled: int
    considered: int
    remaining: int  # unlabeled images not looked at because of the per-click cap
    pending: int  # of those considered, how many have no suggestion yet (a refresh is working on them)


def accept(project, version, threshold: float, *, limit: int = 500, user=None) -> Accepted:
    """Label up to `limit` unlabeled images with the version's stored suggestion where it is at least
    `threshold` sure (multi-label: of every label, that it is there or that it is not, as it said). Pictures the model finds unlike anything it was trained on are never labelled this
    way; pictures without a suggestion yet are left for the refresh this queues."""
    from webui.projects.labels import set_label, set_labels

    unlabeled = project.images.unlabeled().order_by("-created", "-id")
    total = unlabeled.count()
    chosen = list(unlabeled[:limit])
    labels = {label.name: label for label in project.labels.all()}
    known = stored(version, chosen)
    # What each picture becomes: its one label, or (multi-label) its set of labels.
    by_answer: dict[tuple[str, ...], list[int]] = {}
    for image_id, suggestion in known.items():
        said = tuple(suggestion["present"]) if "present" in suggestion else (suggestion["label"],)
        if suggestion["unknown"] or suggestion["sureness"] < threshold or not set(said) <= set(labels):
            continue
        by_answer.setdefault(said, []).append(image_id)
    labelled = 0
    with transaction.atomic():
        for said, ids in by_answer.items():
            # Unlabeled again: someone may have labelled one by hand meanwhile; theirs wins.
            still = project.images.filter(pk__in=ids).unlabeled()
            if project.multi_label:
                labelled += set_labels(still, [labels[name] for name in said])
            else:
                labelled += set_label(still, labels[said[0]])
    pending = 0
    if len(known) < len(chosen):
        refresh = request_refresh(version, user)
        pending = len(chosen) - len(known) if refresh is not None else 0
    return Accepted(labelled, len(chosen), max(0, total - len(chosen)), pending)
