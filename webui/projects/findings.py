"""What a version's data audit found, with the images it names.

The results page and the project's data-health panel list the same findings through `findings`, so
a person sees one account of their data wherever they look.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from webui.lib.numbers import percent
from webui.projects.models import Image

if TYPE_CHECKING:  # a version's metrics are all this reads: the projects app never imports training
    from webui.training.models import ModelVersion


def images_by_sha(project, shas) -> dict[str, Image]:
    """Args: project; shas: image keys (None and repeats allowed). Returns: the project's images by key
    (images deleted since are absent)."""
    shas = {s for s in shas if s}
    if not shas:
        return {}
    images = project.images.filter(sha256__in=shas).select_related("label")
    if project.multi_label:
        images = images.prefetch_related("labels")
    return {i.sha256: i for i in images}


def findings(project, version: ModelVersion | None, *, limit: int) -> dict:
    """Likely mislabeled photos, copies and outliers that a version's audit found, less what has been
    dealt with since: a photo deleted, or relabelled as the model suggested.

    Args:
        project: the version's project.
        version: the version (None: nothing found).
        limit: most items listed per kind (the counts cover every one still open).
    Returns:
        {"mislabeled": [{...finding, image, confidence (%), suggested_label (id)}], "duplicates":
        [{a, b, similarity (%)}], "outliers": [{...finding, image}], and "mislabeled_count",
        "duplicate_count", "outlier_count"}.
    """
    metrics = (version.metrics or {}) if version is not None else {}
    mislabeled = metrics.get("mislabeled") or []
    duplicates = metrics.get("near_duplicates") or []
    outliers = metrics.get("outliers") or []
    found = images_by_sha(
        project,
        [m.get("key") for m in mislabeled]
        + [d.get("a") for d in duplicates]
        + [d.get("b") for d in duplicates]
        + [o.get("key") for o in outliers],
    )
    label_ids = dict(project.labels.values_list("name", "pk"))

    def open_mislabel(m) -> bool:
        image = found.get(m.get("key"))
        if image is not None and project.multi_label:  # still as it was given?
            return (m.get("label") in {lab.name for lab in image.labels.all()}) == (
                m.get("given") == "present"
            )
        return image is not None and (image.label.name if image.label else None) != m.get("predicted")

    if project.multi_label:
        mislabeled = [
            _multi_label_finding(m, found[m["key"]], label_ids) for m in mislabeled if open_mislabel(m)
        ]
    else:
        mislabeled = [
            {
                **m,
                "image": found[m["key"]],
                "confidence": percent(m.get("confidence")),
                "suggested_label": label_ids.get(m.get("predicted")),
            }
            for m in mislabeled
            if open_mislabel(m)
        ]
    pairs = [
        {"a": found[d["a"]], "b": found[d["b"]], "similarity": percent(d.get("similarity"))}
        for d in duplicates
        if d.get("a") in found and d.get("b") in found
    ]
    outliers = [{**o, "image": found[o["key"]]} for o in outliers if o.get("key") in found]
    return {
        "mislabeled": mislabeled[:limit],
        "duplicates": pairs[:limit],
        "outliers": outliers[:limit],
        "mislabeled_count": len(mislabeled),
        "duplicate_count": len(pairs),
        "outlier_count": len(outliers),
    }


def _multi_label_finding(m: dict, image: Image, label_ids: dict) -> dict:
    """A multi-label doubt: one label of one picture, given but not seen, or seen but not given; its
    fix adds or takes off that label (`fix_label`, `fix_present`)."""
    seen = percent(m.get("probability"))
    name = m.get("label")
    if m.get("given") == "absent":
        note = f"Not labelled “{name}”, but the model sees it ({seen}% sure)"
    else:
        note = f"Labelled “{name}”, but the model does not see it ({seen}% sure it is there)"
    return {
        **m,
        "image": image,
        "note": note,
        "confidence": seen,
        "fix_label": label_ids.get(name),
        "fix_present": m.get("given") == "absent",
    }
