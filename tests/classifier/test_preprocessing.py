"""Decoding untrusted images (formats, pixel limits, corrupt files, EXIF) and the resize/crop/normalise contract."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from PIL import Image

from classifier.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from classifier.preprocessing import (
    ALLOWED_FORMATS,
    EXTENSIONS,
    MAX_PIXELS,
    STORED_FORMATS,
    ImageInfo,
    Preprocessing,
    inspect_image,
    load_batch,
    load_rgb,
    preprocess,
    resize_crop_box,
    stored_form,
)

PREP = Preprocessing(
    resize=256, crop=224, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25), interpolation="bilinear"
)


def test_it_keeps_extensions_and_allowed_formats_in_step():
    assert set(EXTENSIONS) == set(STORED_FORMATS) and set(STORED_FORMATS) <= set(ALLOWED_FORMATS)


def _heic(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="HEIF", quality=95)
    return buffer.getvalue()


def test_an_iphone_photo_is_read_and_stored_as_a_jpeg():
    pytest.importorskip("pillow_heif")
    picture = Image.new("RGB", (80, 60), (200, 30, 30))
    picture.paste((30, 30, 200), (0, 0, 40, 60))
    data = _heic(picture)
    assert data[4:12] == b"ftypheic"
    assert inspect_image(data).format == "HEIF"
    stored, info = stored_form(data)
    assert stored[:3] == b"\xff\xd8\xff" and (info.format, info.width, info.height) == ("JPEG", 80, 60)
    pixels = np.asarray(Image.open(io.BytesIO(stored)).convert("RGB"), dtype=int)
    assert abs(pixels[30, 10] - (30, 30, 200)).max() < 25 and abs(pixels[30, 70] - (200, 30, 30)).max() < 25
    assert stored_form(data)[0] == stored  # the same photo twice is the same image
    assert load_rgb(data).size == (80, 60)  # predictions read it directly


def test_other_formats_are_stored_as_they_came(imgs):
    data = imgs.encode(Image.new("RGB", (40, 20), (1, 2, 3)), "PNG")
    assert stored_form(data) == (data, inspect_image(data))


def test_it_imports_neither_torch_nor_django():
    code = (
        "import sys, classifier, classifier.preprocessing, classifier.errors, classifier.backbones, classifier.features\n"
        "classifier.backbones.list_backbones()\n"
        "bad = [m for m in ('torch', 'django', 'torchvision', 'onnxruntime') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_it_round_trips_preprocessing_through_json():
    restored = Preprocessing.from_dict(json.loads(json.dumps(PREP.to_dict())))
    assert restored == PREP
    assert isinstance(restored.mean, tuple)


def test_it_refuses_nonsense_preprocessing():
    with pytest.raises(ValueError):
        Preprocessing(256, 300, (0.5,) * 3, (0.5,) * 3)
    with pytest.raises(ValueError):
        Preprocessing(256, 224, (0.5,) * 3, (0.5,) * 3, interpolation="sharpest")


# --- modes to RGB (row 11) --------------------------------------------------------------------------


def _rgba_half_transparent():
    image = Image.new("RGBA", (8, 8), (255, 0, 0, 255))
    image.paste((0, 0, 255, 0), (0, 0, 4, 8))  # left half fully transparent blue
    return image


def _palette_with_transparency():
    image = Image.new("P", (8, 8), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 6))
    image.paste(1, (0, 0, 4, 8))
    image.info["transparency"] = 1  # green index is transparent
    return image


def _animated_gif(imgs):
    frames = [Image.new("RGB", (8, 8), c).convert("P") for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    return imgs.encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _cmyk_jpeg(imgs):
    return imgs.encode(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=95)  # red


def _i16_png(imgs):
    arr = np.full((8, 8), 65535, dtype=np.uint16)
    arr[:, :4] = 0
    return imgs.encode(Image.fromarray(arr), "PNG")


# (name, factory(imgs) -> bytes, pixel (x, y) -> expected RGB, within tolerance)
MODES = [
    ("RGB", lambda m: m.encode(Image.new("RGB", (8, 8), (10, 200, 30)), "PNG"), {(5, 5): (10, 200, 30)}),
    (
        "RGBA",
        lambda m: m.encode(_rgba_half_transparent(), "PNG"),
        {(1, 1): (255, 255, 255), (6, 6): (255, 0, 0)},
    ),
    ("LA", lambda m: m.encode(Image.new("LA", (8, 8), (0, 0)), "PNG"), {(3, 3): (255, 255, 255)}),
    ("L", lambda m: m.encode(Image.new("L", (8, 8), 77), "PNG"), {(3, 3): (77, 77, 77)}),
    ("1", lambda m: m.encode(Image.new("1", (8, 8), 1), "PNG"), {(3, 3): (255, 255, 255)}),
    (
        "P+transparency",
        lambda m: m.encode(_palette_with_transparency(), "PNG"),
        {(1, 1): (255, 255, 255), (6, 6): (255, 0, 0)},
    ),
    (
        "P+transparency GIF",
        lambda m: m.encode(_palette_with_transparency(), "GIF"),
        {(1, 1): (255, 255, 255), (6, 6): (255, 0, 0)},
    ),
    ("CMYK", _cmyk_jpeg, {(3, 3): (255, 0, 0)}),
    ("I;16", _i16_png, {(1, 1): (0, 0, 0), (6, 6): (255, 255, 255)}),
    ("animated GIF", _animated_gif, {(3, 3): (255, 0, 0)}),
    (
        "RGBA WebP",
        lambda m: m.encode(_rgba_half_transparent(), "WEBP", lossless=True),
        {(1, 1): (255, 255, 255)},
    ),
]


@pytest.mark.parametrize(("name", "factory", "expected"), MODES, ids=[m[0] for m in MODES])
def test_it_converts_every_mode_to_deterministic_rgb(imgs, name, factory, expected):
    data = factory(imgs)
    first = load_rgb(data)
    second = load_rgb(data)
    assert first.mode == "RGB"
    assert first.size == (8, 8)
    assert np.array_equal(np.asarray(first), np.asarray(second))
    for xy, rgb in expected.items():
        assert np.abs(np.asarray(first.getpixel(xy), dtype=int) - rgb).max() <= 3, (
            name,
            xy,
            first.getpixel(xy),
        )


# --- EXIF orientation (row 10) ----------------------------------------------------------------------


def test_it_turns_an_orientation_6_photo_upright(imgs):
    stored = Image.new("RGB", (60, 30), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 15, 10))  # red in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: display rotated 90 degrees clockwise
    data = imgs.encode(stored, "JPEG", quality=95, exif=exif.tobytes())

    info = inspect_image(data)
    upright = load_rgb(data)

    assert info == ImageInfo(format="JPEG", width=30, height=60)
    assert upright.size == (30, 60)
    # Rotating 90 degrees clockwise moves the stored top-left corner to the top-right.
    assert upright.getpixel((27, 3))[0] > 200 and upright.getpixel((27, 3))[2] < 60
    assert upright.getpixel((2, 3))[2] > 200


def _asymmetric_picture() -> Image.Image:
    """48x32 blocks of four colours, none of them mirror or rotation symmetric, 8-pixel aligned for JPEG."""
    image = Image.new("RGB", (48, 32), (20, 20, 220))  # blue
    image.paste((230, 20, 20), (0, 0, 16, 16))  # red top-left
    image.paste((20, 220, 20), (16, 0, 48, 8))  # green strip along the rest of the top
    image.paste((240, 240, 30), (32, 24, 48, 32))  # yellow bottom-right
    return image


# What each EXIF orientation asks a viewer to do to the stored pixels (TIFF/EXIF 2.3, tag 0x0112),
# written with numpy on [row, column] arrays so the expectation does not reuse the code under test.
UPRIGHT = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # mirrored horizontally
    3: lambda a: a[::-1, ::-1],  # rotated 180
    4: lambda a: a[::-1, :],  # mirrored vertically
    5: lambda a: a.transpose(1, 0, 2),  # mirrored horizontally, then rotated 270 clockwise
    6: lambda a: np.rot90(a, -1),  # rotated 90 clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # mirrored horizontally, then rotated 90 clockwise
    8: lambda a: np.rot90(a, 1),  # rotated 270 clockwise (90 anticlockwise)
}


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_it_turns_every_exif_orientation_upright(imgs, orientation, fmt):
    stored = _asymmetric_picture()
    exif = Image.Exif()
    exif[0x0112] = orientation
    params = {"quality": 95, "subsampling": 0} if fmt == "JPEG" else {}
    data = imgs.encode(stored, fmt, exif=exif.tobytes(), **params)
    expected = UPRIGHT[orientation](np.asarray(stored, dtype=np.int16))
    height, width = expected.shape[:2]

    info = inspect_image(data)
    upright = load_rgb(data)
    got = np.asarray(upright, dtype=np.int16)

    assert info == ImageInfo(format=fmt, width=width, height=height)
    assert upright.mode == "RGB" and upright.size == (width, height)
    if fmt == "PNG":
        assert np.array_equal(got, expected)
    else:  # lossy: allow ringing at the block edges, but every block must sit where it belongs
        assert np.abs(got - expected).mean() < 4
        assert np.abs(got[4::8, 4::8] - expected[4::8, 4::8]).max() < 24  # the centre of every 8x8 cell
    # Pillow's own reading of the tag agrees (an independent implementation of the same table).
    from PIL import ImageOps

    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    assert np.abs(np.asarray(reference.convert("RGB"), dtype=np.int16) - got).max() <= 1


def test_it_ignores_a_broken_exif_block(imgs):
    data = imgs.encode(imgs.gradient((20, 10)), "JPEG", exif=b"Exif\x00\x00garbage-garbage")
    assert load_rgb(data).size == (20, 10)


# --- bad input (rows 1-6) ---------------------------------------------------------------------------


def test_it_reports_a_truncated_jpeg_as_incomplete(imgs):
    data = imgs.encode(imgs.gradient((200, 150)), "JPEG", quality=95)
    for cut in (len(data) // 2, len(data) - 200):
        with pytest.raises(InvalidImage, match="image is incomplete"):
            inspect_image(data[:cut])
        with pytest.raises(InvalidImage, match="image is incomplete"):
            load_rgb(data[:cut], target_size=64)


def test_it_reports_a_truncated_png_as_incomplete(imgs):
    data = imgs.encode(imgs.gradient((200, 150)), "PNG")
    with pytest.raises(InvalidImage, match="image is incomplete"):
        inspect_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 10,
        bytes(range(256)) * 40,
        b"<html><script>alert(1)</script></html>",
        b"\xff\xd8\xff\xe0garbage",
    ],
    ids=["empty", "zeros", "random", "html", "jpeg-magic-then-garbage"],
)
def test_it_rejects_garbage_as_not_an_image(data):
    with pytest.raises(InvalidImage, match="not an image|incomplete"):
        inspect_image(data)
    with pytest.raises(InvalidImage):
        load_rgb(data)


def test_it_recognises_a_png_named_jpg_by_content(tmp_path, imgs, png_bytes, jpeg_bytes):
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(png_bytes)
    reverse = tmp_path / "photo.png"
    reverse.write_bytes(jpeg_bytes)
    assert inspect_image(misnamed).format == "PNG"
    assert inspect_image(reverse).format == "JPEG"
    assert EXTENSIONS[inspect_image(misnamed).format] == "png"


def _foreign_files(imgs):
    picture = imgs.gradient((16, 16))
    return {
        "TIFF": imgs.encode(picture, "TIFF"),
        "PDF": imgs.encode(picture, "PDF"),
        "ICO": imgs.encode(picture, "ICO"),
        "PSD": b"8BPS\x00\x01"
        + b"\x00" * 6
        + b"\x00\x03\x00\x00\x00\x10\x00\x00\x00\x10\x00\x08\x00\x03"
        + b"\x00" * 64,
        "EPS": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\nshowpage\n",
        "SVG": b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        "FITS": b"SIMPLE  =                    T" + b" " * 2850,
    }


@pytest.mark.parametrize("fmt", ["TIFF", "PDF", "ICO", "PSD", "EPS", "SVG", "FITS"])
def test_it_refuses_formats_outside_the_allow_list(imgs, fmt):
    data = _foreign_files(imgs)[fmt]
    with pytest.raises(UnsupportedFormat) as excinfo:
        inspect_image(data)
    assert fmt in str(excinfo.value) and "JPEG" in str(excinfo.value)
    with pytest.raises(UnsupportedFormat):
        load_rgb(data)


def test_it_never_runs_a_decoder_outside_the_allow_list(imgs, monkeypatch):
    from PIL import TiffImagePlugin

    def boom(*args, **kwargs):
        raise AssertionError("the TIFF parser ran")

    monkeypatch.setattr(TiffImagePlugin.TiffImageFile, "_open", boom)
    with pytest.raises(UnsupportedFormat):
        inspect_image(imgs.encode(imgs.gradient((8, 8)), "TIFF"))


def test_it_decodes_only_the_pixels_of_a_png_with_html_appended(imgs, png_bytes):
    polyglot = png_bytes + b"<html><script>alert(document.cookie)</script></html>"
    assert inspect_image(polyglot).format == "PNG"
    assert np.array_equal(np.asarray(load_rgb(polyglot)), np.asarray(load_rgb(png_bytes)))
    reencoded = io.BytesIO()
    load_rgb(polyglot).save(reencoded, "PNG")
    assert b"<script" not in reencoded.getvalue()


def test_it_refuses_a_decompression_bomb_header_fast(imgs):
    data = imgs.png_header_only(50_000, 50_000)
    assert len(data) < 100
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge):
        inspect_image(data)
    with pytest.raises(ImageTooLarge):
        load_rgb(data, target_size=224)
    assert time.perf_counter() - started < 1.0


def test_it_refuses_images_between_the_warning_and_error_limits(imgs):
    side = int((MAX_PIXELS * 1.5) ** 0.5)  # Pillow only warns here; we refuse
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(ImageTooLarge, match="too large"):
            inspect_image(imgs.png_header_only(side, side))


# --- sources ----------------------------------------------------------------------------------------


def test_it_reads_bytes_paths_and_file_objects_alike(tmp_path, jpeg_bytes):
    path = tmp_path / "a.jpg"
    path.write_bytes(jpeg_bytes)
    fileobj = io.BytesIO(b"xx" + jpeg_bytes)
    fileobj.seek(2)
    results = [load_rgb(jpeg_bytes), load_rgb(path), load_rgb(str(path)), load_rgb(fileobj)]
    assert fileobj.tell() == 2  # the caller's position is left where it was
    for image in results[1:]:
        assert np.array_equal(np.asarray(image), np.asarray(results[0]))


def test_it_decodes_large_jpegs_at_reduced_scale_but_never_below_target(imgs):
    data = imgs.encode(imgs.gradient((2000, 1200)), "JPEG", quality=85)
    reduced = load_rgb(data, target_size=256)
    assert 256 <= min(reduced.size) < 1200
    assert load_rgb(data).size == (2000, 1200)


# --- tensors ----------------------------------------------------------------------------------------


def test_it_normalises_a_flat_colour_exactly():
    image = Image.new("RGB", (300, 260), (255, 0, 128))
    arr = preprocess(image, PREP)
    assert arr.shape == (3, 224, 224) and arr.dtype == np.float32
    expected = [(1.0 - 0.5) / 0.25, (0.0 - 0.5) / 0.25, (128 / 255 - 0.5) / 0.25]
    for channel, value in enumerate(expected):
        assert np.allclose(arr[channel], value, atol=1e-5)


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (193, 130), (224, 224), (1000, 300)])
def test_it_matches_resize_then_center_crop(imgs, size):
    image = imgs.gradient(size)
    (new_w, new_h), (left, top) = resize_crop_box(*size, PREP)
    assert min(new_w, new_h) == PREP.resize
    reference = image.resize((new_w, new_h), Image.Resampling.BILINEAR).crop(
        (left, top, left + 224, top + 224)
    )
    expected = (np.asarray(reference, dtype=np.float32) / 255 - 0.5) / 0.25
    got = preprocess(image, PREP).transpose(1, 2, 0)
    # One grey level of rounding is allowed (the fast path resizes only the crop's pixels).
    assert np.abs(got - expected).max() <= 1.01 / 255 / 0.25


def test_it_stacks_a_batch(sample_images):
    batch = load_batch(sample_images, PREP)
    assert batch.shape == (len(sample_images), 3, 224, 224)
    assert batch.dtype == np.float32
    assert np.isfinite(batch).all()
    assert load_batch([], PREP).shape == (0, 3, 224, 224)


def test_images_too_small_to_mean_anything_are_refused_from_their_header(imgs):
    from classifier.errors import ImageTooSmall
    from classifier.preprocessing import MIN_SIDE, require_min_size

    for size in ((1, 1), (MIN_SIDE - 1, 400), (400, MIN_SIDE - 1)):
        with pytest.raises(ImageTooSmall, match=f"{size[0]}x{size[1]} pixels; a model needs at least"):
            require_min_size(imgs.encode(Image.new("RGB", size, (200, 0, 0)), "PNG"))
        with pytest.raises(ImageTooSmall):
            stored_form(imgs.encode(Image.new("RGB", size, (200, 0, 0)), "PNG"))
    require_min_size(imgs.encode(Image.new("RGB", (MIN_SIDE, MIN_SIDE), (200, 0, 0)), "PNG"))


def test_reading_a_pngs_header_never_decodes_its_pixels(imgs, monkeypatch):
    from PIL import ImageFile

    from classifier.preprocessing import read_header

    data = imgs.encode(Image.new("RGB", (3000, 2000), (90, 90, 90)), "PNG")

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    header = read_header(data)
    assert (header.format, header.size, header.orientation) == ("PNG", (3000, 2000), 1)
