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


def shapes(red: bool, blue: bool, seed: int) -> bytes:
    """A JPEG with red blobs, blue stripes, both or neither on a grey-ish ground: a multi-label set
    whose labels "red" and "blue" the default backbone tells apart from a few pictures."""
    import random

    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", (120, 96), tuple(rng.randint(150, 210) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    if blue:
        for _ in range(4):
            y = rng.randint(0, 90)
            draw.rectangle([0, y, 120, y + rng.randint(3, 8)], fill=(40, 60, 200 + rng.randint(-30, 30)))
    if red:
        for _ in range(4):
            x, y = rng.randint(0, 100), rng.randint(0, 80)
            box = [x, y, x + rng.randint(10, 25), y + rng.randint(10, 25)]
            draw.ellipse(box, fill=(200 + rng.randint(-30, 30), 40, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()
