"""Typed errors with messages a person can act on.

Callers (the CLI, the workers, the API) show `str(error)` to people, so every message says what is
wrong and, where it can, what to do about it.
"""


class ClassifierError(Exception):
    """Base class of every error the engine raises on purpose."""


class ImageError(ClassifierError):
    """An input image cannot be used."""


class InvalidImage(ImageError):
    """The bytes are not a decodable image, or the image is incomplete."""


class UnsupportedFormat(ImageError):
    """A real image, but in a format outside the allow-list (PSD, TIFF, PDF, SVG, ...)."""


class ImageTooLarge(ImageError):
    """More pixels than the decompression-bomb limit allows."""


class ImageTooSmall(ImageError):
    """Too few pixels for a model to see anything in (an icon, a tracking pixel)."""


class BackboneUnavailable(ClassifierError):
    """A backbone's weights are not installed or cached on this host, or the name is unknown."""


class ArtifactError(ClassifierError):
    """A model artifact is missing, corrupt, tampered with, or from an incompatible format version."""


class TrainingError(ClassifierError):
    """Training cannot start or finish with this data ("each label needs at least 2 images")."""


class Cancelled(ClassifierError):
    """The caller asked to stop; raised from inside a progress callback between batches."""


class ExportError(ClassifierError):
    """A model version cannot be exported to a format here, or its export does not answer as it does."""
