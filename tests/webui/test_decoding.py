"""The decoding budget of web requests: pixels refused from the header, a bounded number of decodes
at once (503 when none comes free), and JPEGs counted at the reduced scale they are decoded at."""

from __future__ import annotations

import io
import threading

import pytest
from django.urls import reverse
from PIL import Image

from classifier.errors import ImageTooLarge
from classifier.preprocessing import ImageHeader, decoded_pixels
from webui.lib import decoding

pytestmark = pytest.mark.django_db


def _one_bit_png(side: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("1", (side, side), 1).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_small_file_holding_a_huge_picture_is_refused_before_decoding(settings):
    bomb = _one_bit_png(9400)
    assert len(bomb) < 100_000  # about 11 KB on disk; 265 MB as RGB
    with pytest.raises(
        ImageTooLarge, match=r"9400x9400 pixels \(88 megapixels\); a prediction takes at most 24"
    ):
        decoding.check_pixels(
            bomb, settings.PINHOLE_PREDICT_MAX_MEGAPIXELS, target_size=256, purpose="a prediction"
        )
    with pytest.raises(ImageTooLarge, match="an upload takes at most 60"):
        decoding.check_pixels(bomb, settings.PINHOLE_UPLOAD_MAX_MEGAPIXELS, purpose="an upload")


def test_jpegs_count_the_pixels_their_reduced_decode_makes():
    photo = ImageHeader(b"", "JPEG", "RGB", (9000, 6000), 1)
    assert decoded_pixels(photo, 256) == 1125 * 750  # decoded at 1/8
    assert decoded_pixels(photo, 1600) == 4500 * 3000  # a full view: 1/2 still covers 1600
    assert decoded_pixels(photo) == 9000 * 6000
    assert decoded_pixels(ImageHeader(b"", "PNG", "RGB", (9000, 6000), 1), 256) == 9000 * 6000


def test_an_upload_of_a_huge_picture_is_refused_with_the_reason(client_for, project, owner, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from webui.projects.ingest import UploadRejected, ingest_image

    with pytest.raises(UploadRejected, match="88 megapixels"):
        ingest_image(project, owner, SimpleUploadedFile("bomb.png", _one_bit_png(9400)))
    assert not project.images.exists()


@pytest.mark.slow
def test_when_every_decoding_slot_stays_taken_the_request_is_answered_503(
    client_for, trained_project, viewer, settings
):
    from tests.helpers import photo, png

    settings.PINHOLE_DECODE_SLOTS, settings.PINHOLE_DECODE_WAIT_S = 1, 0.2
    decoding._slots.cache_clear()
    held, release = threading.Event(), threading.Event()

    def hold():
        with decoding.slot():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        held.wait(5)
        response = client_for(viewer).post(
            reverse("serving:predict", args=[trained_project.pk]),
            {"file": photo(png())},
            HTTP_X_CSRFTOKEN="x",
        )
        assert response.status_code == 503 and response["Retry-After"] == "5"
        assert "busy decoding other pictures" in response.json()["detail"]
    finally:
        release.set()
        holder.join()
        decoding._slots.cache_clear()


def test_memory_is_handed_back_without_failing_where_the_allocator_cannot():
    decoding.give_memory_back()  # glibc's malloc_trim here; a no-op elsewhere
    with decoding.slot(pixels=10_000_000):
        pass
