"""A share page's "run on this device": what the visitor's browser needs to answer as the server does.

The browser gets the version's graph with the "none of these" check inside it
(classifier.exporting.browser), and the few numbers that decide how an answer is worded: the labels in
the graph's order, the picture preparation, the answer threshold (single label) or each label's
threshold (multi-label). Only for links whose owner allowed it (ShareLink.on_device).
"""

from __future__ import annotations

from pathlib import Path

from django.urls import reverse

from classifier.artifacts import read_manifest
from classifier.exporting.browser import browser_graph
from classifier.features import default_model_cache
from webui.serving.models import ShareLink
from webui.serving.services import NoModel, resolve_version
from webui.training import label_thresholds
from webui.training.artifacts import local_copy
from webui.training.models import ModelVersion


def _manifest(version: ModelVersion) -> dict:
    return read_manifest(local_copy(version))


def device_config(link: ShareLink, token: str) -> dict:
    """What the page's script needs, for the version the link answers with.

    Raises:
        NoModel: nothing serves (yet).
    """
    version = resolve_version(link.project, link.version_id)
    manifest = _manifest(version)
    multi = manifest.get("task_type") == "multi_label"
    config = {
        "model_url": reverse("serving:public_model", args=[token, version.pk]),
        "model_version": version.number,
        "labels": list(manifest["labels"]),
        "preprocessing": manifest["preprocessing"],
        "task_type": manifest.get("task_type", "single_label"),
        "threshold": None if multi else version.answer_threshold,
    }
    if multi:
        config["thresholds"] = label_thresholds.effective(version, manifest.get("thresholds") or {})
        config["unsure_margin"] = label_thresholds.UNSURE_MARGIN
    return config


def model_file(link: ShareLink, version_id: int) -> Path:
    """The browser graph of the version the link answers with now.

    Raises:
        NoModel: `version_id` is not the version the link answers with (a page older than a promotion
            asks again), or nothing serves.
    """
    version = resolve_version(link.project, link.version_id)
    if version.pk != version_id:
        raise NoModel("the link answers with another version now; reload the page")
    return browser_graph(local_copy(version), default_model_cache() / "browser")
