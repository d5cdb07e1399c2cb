"""Small builders shared by the Django tests (import as `from tests.helpers import ...`)."""

from __future__ import annotations

import io

RED, BLUE = (210, 40, 40), (40, 40, 210)


def png(colour=(200, 40, 40), seed: int = 0, size=(64, 64), fmt: str = "PNG") -> bytes:
    """A noisy single-colour photo-like image; two colours are two easy classes."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    noise = rng.integers(-40, 40, size=(size[1], size[0], 3))
    pixels = np.clip(np.array(colour)[None, None, :] + noise, 0, 255).astype("uint8")
    buffer = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buffer, format=fmt)
    return buffer.getvalue()


def photo(data: bytes, name: str = "q.png"):
    """An uploaded file as a view or service receives it."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data, content_type="application/octet-stream")
