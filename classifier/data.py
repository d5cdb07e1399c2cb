"""What every step passes along: a labelled image and where its bytes come from.

A sample's bytes are read only when a step needs its pixels (its features are not cached yet), and
then one batch at a time, so a training over object storage never holds every image in memory.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Sample:
    """One labelled image.

    Attributes:
        key: sha256 of the image bytes (the feature-cache key).
        source: bytes, a path, a binary file object, or a callable returning bytes (called only when
            the pixels are needed).
        label: its label name ("" in a multi-label project).
        labels: the labels in the picture, for a multi-label project (empty: none of them).
        split: "train", "test" (a frozen evaluation split chosen by the caller) or "auto".
    """

    key: str
    source: object
    label: str
    split: str = "auto"
    labels: tuple[str, ...] = ()


def resolve(source):
    """Args: source: a Sample's source. Returns: it in a form the decoder reads (callables are called)."""
    return source() if callable(source) else source
