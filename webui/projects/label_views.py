"""The label page: the grid of pictures with its filters, labelling many at once (one label per
picture, or a set of labels in a multi-label project), and accepting the model's suggestions.

Every view resolves its project through webui.projects.access (strangers 404, viewers 403 on changes).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Count
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_POST

from webui.projects.access import get_project_for_user
from webui.projects.forms import AcceptSuggestionsForm
from webui.projects.images import delete_image
from webui.projects.labels import clear_labels, set_label, set_labels, toggle_label
from webui.projects.models import LABEL_COLOURS, UNLABELED, Image
from webui.projects.views import _back, _wants_json
from webui.serving import suggestions

PAGE_SIZE = 60
ACCEPT_LIMIT = 500


def _mislabeled(project) -> dict[str, dict]:
    """The serving version's doubts by picture: its first finding, with every finding under "all"
    (a multi-label picture may have one per label)."""
    version = project.serving_version
    items = (version.metrics or {}).get("mislabeled") if version else None
    found: dict[str, dict] = {}
    for item in items or []:
        if isinstance(item, dict) and "key" in item:
            found.setdefault(item["key"], {**item, "all": []})["all"].append(item)
    return found


@login_required
def label(request, project_id):
    project = get_project_for_user(request.user, project_id)
    multi = project.multi_label
    labels = list(project.labels.annotate(image_count=Count("tagged_images" if multi else "images")))
    show = request.GET.get("show", "all")
    images = project.images.select_related("label").order_by("-created", "-id")
    if multi:
        images = images.prefetch_related("labels")
    version = project.serving_version
    mislabeled = _mislabeled(project)
    current_label = None
    suggested: dict[int, dict] = {}
    if show == "unlabeled":
        images = images.unlabeled()
    elif show == "none" and multi:
        images = images.labelled().filter(labels__isnull=True)
    elif show == "next" and version is not None:
        # The pictures a label would teach the model most, in the order a worker stored.
        images = suggestions.ordered_next(version, images.unlabeled())
    elif show == "suggested":
        # The model's guesses for the most recent unlabeled images, surest first: the ones to check and
        # accept quickly. Guesses are cached per version and image, so only new images cost a prediction.
        unlabeled = list(images.unlabeled()[:ACCEPT_LIMIT]) if version else []
        suggested = suggestions.stored(version, unlabeled) if version else {}
        suggested = {pk: s for pk, s in suggested.items() if not s["unknown"]}
        images = sorted(
            (i for i in unlabeled if i.pk in suggested), key=lambda i: -suggested[i.pk]["sureness"]
        )
    elif show == "mislabeled":
        order = {key: index for index, key in enumerate(mislabeled)}
        images = sorted(images.filter(sha256__in=list(mislabeled)), key=lambda i: order[i.sha256])
    elif show == "label":
        current_label = next((lab for lab in labels if str(lab.pk) == request.GET.get("label")), None)
        chosen = {"labels" if multi else "label": current_label}
        images = images.filter(**chosen) if current_label else images.none()
    else:
        show = "all"
    page = Paginator(images, PAGE_SIZE).get_page(request.GET.get("page"))
    tiles = list(page.object_list)

    if multi:
        _multi_label_tiles(tiles, mislabeled if show == "mislabeled" else {})
    if version is not None and show != "suggested":
        if show == "mislabeled" and multi:
            suggested = {}  # the tiles say which label it doubts (_multi_label_tiles)
        elif show == "mislabeled":
            suggested = {
                i.pk: {
                    "label": mislabeled[i.sha256].get("predicted"),
                    "probability": mislabeled[i.sha256].get("confidence") or 0,
                    "given": mislabeled[i.sha256].get("given"),
                    "unknown": False,
                }
                for i in tiles
            }
        else:
            suggested = suggestions.stored(version, [i for i in tiles if not i.is_labelled])
    by_name = {lab.name: lab for lab in labels}
    for tile in tiles:
        tile.suggestion = suggested.get(tile.pk)
        if tile.suggestion and "present" in tile.suggestion:  # multi-label: a set of labels
            said = [by_name[name] for name in tile.suggestion["present"] if name in by_name]
            tile.suggestion["text"] = ", ".join(lab.name for lab in said) or "none of these"
            tile.suggestion["ids"] = ",".join(str(lab.pk) for lab in said) or "none"
            tile.suggestion["percent"] = round(100 * float(tile.suggestion["sureness"]))
        elif tile.suggestion:
            tile.suggestion["label_obj"] = by_name.get(tile.suggestion["label"])
            tile.suggestion["percent"] = round(100 * float(tile.suggestion["probability"]))

    counts = project.images.aggregate(total=Count("id"), unlabeled=Count("id", filter=UNLABELED))
    if multi:
        counts["none"] = project.images.labelled().filter(labels__isnull=True).count()
    # Suggestions are worked out by a worker: ask for the pictures that have none yet.
    refresh = suggestions.request_refresh(version, request.user) if version and counts["unlabeled"] else None
    query = {"show": show}
    if current_label:
        query["label"] = current_label.pk
    context = {
        "project": project,
        "can_edit": project.can_edit(request.user),
        "labels": labels,
        "page": page,
        "tiles": tiles,
        "show": show,
        "current_label": current_label,
        "counts": counts,
        "mislabeled_count": len(mislabeled),
        "version": version,
        "query": "&".join(f"{k}={v}" for k, v in query.items()),
        "accept_form": AcceptSuggestionsForm(),
        "accept_limit": ACCEPT_LIMIT,
        "refresh": refresh,
        "labels_json": [{"id": lab.pk, "name": lab.name, "colour": lab.colour} for lab in labels],
        "next_colour": LABEL_COLOURS[len(labels) % len(LABEL_COLOURS)],
        "tab": "label",
    }
    return render(request, "projects/label.html", context)


def _multi_label_tiles(tiles, mislabeled: dict) -> None:
    """Each tile's labels (and, on the "likely mislabeled" filter, what the model doubts about them)."""
    for tile in tiles:
        tile.tags = list(tile.labels.all())
        tile.label_ids = ",".join(str(lab.pk) for lab in tile.tags)
        tile.doubts = [
            f"{item['label']} {'missing' if item['given'] == 'absent' else 'wrong'}?"
            for item in mislabeled.get(tile.sha256, {}).get("all", [])
        ]


@login_required
@require_POST
def label_apply(request, project_id):
    """Set (or clear, or delete) many images at once: `images` ids, then `label` id, `none`, or `delete`.

    Multi-label projects: `label` id with `present` 1 or 0 adds it to (or takes it off) each picture;
    `none` says they have none of the labels; `unlabel` makes them unlabelled again."""
    project = get_project_for_user(request.user, project_id, write=True)
    raw = request.POST.getlist("images")
    ids = [int(part) for value in raw for part in value.split(",") if part.strip().isdigit()]
    images = project.images.filter(pk__in=ids)
    target = request.POST.get("label", "")
    label_obj = None
    if target == "delete":
        doomed = list(images)
        with transaction.atomic():
            for image in doomed:
                delete_image(image)
        changed, summary = len(doomed), f"Deleted {len(doomed)} image{'s' if len(doomed) != 1 else ''}."
    elif project.multi_label:
        return _apply_multi_label(request, project, images, target)
    elif target in ("none", ""):
        changed = set_label(images, None)
        summary = f"Removed the label from {changed} image{'s' if changed != 1 else ''}."
    else:
        label_obj = project.labels.filter(pk=target if target.isdigit() else None).first()
        if label_obj is None:
            return _no_such_label(request, project)
        changed = set_label(images, label_obj)
        summary = f"Labelled {changed} image{'s' if changed != 1 else ''} “{label_obj.name}”."
    if _wants_json(request):
        label_body = label_obj and {"id": label_obj.pk, "name": label_obj.name, "colour": label_obj.colour}
        return JsonResponse({"changed": changed, "label": label_body, "deleted": target == "delete"})
    messages.success(request, summary)
    return _back(request, project)


def _no_such_label(request, project):
    if _wants_json(request):
        return JsonResponse({"error": "no such label in this project"}, status=400)
    messages.error(request, "No such label in this project.")
    return _back(request, project)


def _apply_multi_label(request, project, images, target: str):
    plural = lambda n: f"{n} picture{'s' if n != 1 else ''}"  # noqa: E731
    if target == "none":
        changed = set_labels(images, [])
        summary = f"Marked {plural(changed)} as showing none of the labels."
    elif target == "set":  # exactly these labels (a suggestion taken): `labels`, label ids
        wanted = [int(part) for part in request.POST.get("labels", "").split(",") if part.strip().isdigit()]
        chosen = list(project.labels.filter(pk__in=wanted))
        if len(chosen) != len(set(wanted)):
            return _no_such_label(request, project)
        changed = set_labels(images, chosen)
        summary = f"Labelled {plural(changed)} {', '.join(lab.name for lab in chosen) or 'none of these'}."
    elif target in ("unlabel", ""):
        changed = clear_labels(images)
        summary = f"Made {plural(changed)} unlabelled again."
    else:
        label_obj = project.labels.filter(pk=target if target.isdigit() else None).first()
        if label_obj is None:
            return _no_such_label(request, project)
        present = request.POST.get("present", "1") != "0"
        changed = toggle_label(images, label_obj, present)
        summary = f"{'Added' if present else 'Removed'} “{label_obj.name}” {'to' if present else 'from'} {plural(changed)}."
    if _wants_json(request):
        now = {i.pk: [] for i in images}
        through = Image.labels.through.objects.filter(image__in=images).order_by(
            "label__order", "label__name"
        )
        for image_id, label_id in through.values_list("image_id", "label_id"):
            now[image_id].append(label_id)
        unlabeled = set(images.unlabeled().values_list("pk", flat=True))
        body = {str(pk): None if pk in unlabeled else ids for pk, ids in now.items()}
        return JsonResponse({"changed": changed, "images": body})
    messages.success(request, summary)
    return _back(request, project)


@login_required
@require_POST
def accept_suggestions(request, project_id):
    project = get_project_for_user(request.user, project_id, write=True)
    form = AcceptSuggestionsForm(request.POST)
    version = project.serving_version
    if version is None:
        messages.error(request, "There is no model yet: train one, then its suggestions appear here.")
    elif not form.is_valid():
        messages.error(request, "Choose a confidence between 50 and 100 %.")
    else:
        threshold = form.cleaned_data["threshold"]
        done = suggestions.accept(project, version, threshold / 100, limit=ACCEPT_LIMIT, user=request.user)
        text = (
            f"Labelled {done.labelled} of {done.considered} unlabeled image"
            f"{'s' if done.considered != 1 else ''} where v{version.number} was at least {threshold} % sure."
        )
        if done.pending:
            text += f" {done.pending} have no suggestion yet (v{version.number} is still looking at them)."
        if done.remaining:
            text += f" {done.remaining} more were not looked at ({ACCEPT_LIMIT} per click): click again."
        messages.success(request, text)
    return _back(request, project)
