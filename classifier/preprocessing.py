"""Decode untrusted image bytes safely and turn them into the tensors a backbone expects.

Every image that enters Pinhole passes through `inspect_image` (at upload) or `load_rgb` (at
extraction and prediction). Both open the bytes with Pillow restricted to an allow-list of formats, so
the parsers behind recent Pillow CVEs (PSD, FITS, PDF, EPS, JPEG 2000, ...) never see user data, and
both refuse decompression bombs from the header before any pixel buffer is allocated.

This module must not import torch: the web process serves predictions without it.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import IO

import numpy as np
from PIL import Image, UnidentifiedImageError

from classifier import pixels
from classifier.errors import ImageTooLarge, ImageTooSmall, InvalidImage, UnsupportedFormat
from classifier.pixels import FRAMINGS, RESAMPLING, orientation, upright_rgb


def _heif_decoder() -> tuple[str, ...]:
    """("HEIF",) when pillow-heif can decode iPhone photos (HEIC) here, else ()."""
    try:
        import pillow_heif
    except ImportError:  # an optional decoder: without it HEIC is refused with a clear message
        return ()
    pillow_heif.register_heif_opener()
    return ("HEIF",)


# Decoders untrusted bytes may reach, by Pillow format name; nothing else is ever run on them.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", *_heif_decoder())
# Formats stored as they came; the others (HEIC: most browsers cannot show it) become JPEG on upload.
STORED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp", "GIF": "gif", "BMP": "bmp"}
# Quality of the JPEG a HEIC photo becomes: visually lossless for photos.
CONVERTED_JPEG_QUALITY = 92

# Fewer pixels than this on a side carry nothing a model can see (a 1x1 tracking pixel, an icon): the
# site refuses them instead of answering with a confident-looking label.
MIN_SIDE = 16

# Pillow's own default for Image.MAX_IMAGE_PIXELS (it warns above it and refuses above twice it). We
# refuse at the warning level: 89 Mpx is already far beyond any photo a person labels by hand.
MAX_PIXELS = 89_478_485

Source = bytes | bytearray | memoryview | str | os.PathLike | IO[bytes]

_ALLOWED_TEXT = (
    "JPEG, PNG, WebP, GIF, BMP or HEIC" if "HEIF" in ALLOWED_FORMATS else "JPEG, PNG, WebP, GIF or BMP"
)

# Magic numbers of real image (or image-like document) formats we refuse. Recognising them lets us say
# "TIFF is not supported" instead of "not an image" without ever running their decoders.
_FOREIGN_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"),
    (b"MM\x00+", "TIFF"),
    (b"8BPS", "PSD"),
    (b"%PDF", "PDF"),
    (b"%!PS", "EPS"),
    (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"SIMPLE  =", "FITS"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"\x00\x00\x02\x00", "CUR"),
    (b"icns", "ICNS"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"gimp xcf", "XCF"),
    (b"DDS ", "DDS"),
    (b"qoif", "QOI"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
    (b"#?RADIANCE", "HDR"),
    (b"\xff\x0a", "JPEG XL"),
    (b"\x00\x00\x00\x0cJXL ", "JPEG XL"),
    (b"P1", "PNM"),
    (b"P2", "PNM"),
    (b"P3", "PNM"),
    (b"P4", "PNM"),
    (b"P5", "PNM"),
    (b"P6", "PNM"),
    (b"\x0a\x05\x01", "PCX"),
    (b"FORM", "IFF"),
)


@dataclass(frozen=True)
class Preprocessing:
    """How a backbone wants its input: frame (resize the short side and center-crop, or squeeze the
    whole frame), normalise.

    Travels with the weights (backbones.py) and into every model artifact, so training and serving
    can never disagree about it.
    """

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    framing: str = "crop"

    def __post_init__(self):
        if self.interpolation not in RESAMPLING:
            raise ValueError(f"unknown interpolation {self.interpolation!r}; use one of {sorted(RESAMPLING)}")
        if self.framing not in FRAMINGS:
            raise ValueError(f"unknown framing {self.framing!r}; use one of {', '.join(FRAMINGS)}")
        if not (0 < self.crop <= self.resize):
            raise ValueError(f"crop ({self.crop}) must be positive and at most resize ({self.resize})")

    def to_dict(self) -> dict:
        """Returns: a JSON-ready dict (tuples become lists)."""
        d = asdict(self)
        d["mean"] = list(self.mean)
        d["std"] = list(self.std)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preprocessing:
        """Args: d: a dict from `to_dict` (e.g. read back from a manifest). Returns: the Preprocessing."""
        return cls(
            resize=int(d["resize"]),
            crop=int(d["crop"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
            interpolation=str(d.get("interpolation", "bilinear")),
            framing=str(d.get("framing", "crop")),  # versions made before framing was chosen cropped
        )


@dataclass(frozen=True)
class ImageInfo:
    """What a checked image is: its real format (by content) and upright size."""

    format: str
    width: int
    height: int


# --- opening ----------------------------------------------------------------------------------------


def read_bytes(source: Source) -> bytes:
    """Reads the whole source; a file object is read from where it stands and put back there.

    Raises:
        InvalidImage: a file that is gone or cannot be read (its path stays out of the message: it
            reaches people who have no business knowing the server's layout).
    """
    if isinstance(source, bytes):
        return source
    if isinstance(source, bytearray | memoryview):
        return bytes(source)
    if isinstance(source, str | os.PathLike):
        try:
            with open(source, "rb") as fp:
                return fp.read()
        except FileNotFoundError:
            raise InvalidImage("the picture's file is gone (deleted while it was being read?)") from None
        except OSError as exc:
            raise InvalidImage(
                f"the picture's file cannot be read ({exc.strerror or type(exc).__name__})"
            ) from None
    if hasattr(source, "read"):
        pos = None
        try:
            pos = source.tell() if source.seekable() else None
        except (AttributeError, OSError, ValueError):
            pos = None
        data = source.read()
        if pos is not None:
            source.seek(pos)
        if isinstance(data, str):
            raise TypeError("open the file in binary mode ('rb')")
        return bytes(data)
    raise TypeError(f"expected bytes, a path or a binary file object, not {type(source).__name__}")


def _sniff_foreign(head: bytes) -> str | None:
    """Returns: the name of a recognised but refused format, or None."""
    for magic, name in _FOREIGN_MAGIC:
        if head.startswith(magic):
            return name
    if len(head) >= 12 and head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIC"
    text = head[:2048].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg", b"<!doctype svg")) and b"<svg" in text:
        return "SVG"
    return None


def _is_truncation(error: Exception) -> bool:
    return isinstance(error, EOFError | struct.error) or "truncated" in str(error).lower()


def _open(data: bytes) -> Image.Image:
    """Opens (header only) with the allow-listed decoders; checks the pixel count before any decode."""
    if not data:
        raise InvalidImage("not an image: the file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(
            f"the image is too large to process (more than {MAX_PIXELS:,} pixels); upload a smaller version"
        ) from e
    except UnidentifiedImageError as e:
        foreign = _sniff_foreign(data[:4096])
        if foreign:
            raise UnsupportedFormat(
                f"{foreign} images are not supported; upload a {_ALLOWED_TEXT} image"
            ) from e
        raise InvalidImage(f"not an image: the file is not a {_ALLOWED_TEXT} image") from e
    except Exception as e:
        # A known signature with a header Pillow cannot parse; its plugins raise a zoo of exception
        # types here, and untrusted bytes must always end as a clear 400, never a 500.
        if _is_truncation(e):
            raise InvalidImage(f"image is incomplete: the file ends inside its header ({e})") from e
        raise InvalidImage(f"not an image: the header is corrupt ({e})") from e
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidImage("not an image: it has no pixels")
    if width * height > MAX_PIXELS:
        image.close()
        raise ImageTooLarge(
            f"the image is too large to process ({width}x{height} pixels, more than {MAX_PIXELS:,}); "
            "upload a smaller version"
        )
    return image


# What Pillow's decoders raise on corrupt pixel data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError)


def _decode(image: Image.Image) -> None:
    """Decodes the pixels so a truncated or corrupt file is detected here, not later."""
    try:
        image.load()
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"the image is too large to process (more than {MAX_PIXELS:,} pixels)") from e
    except _DECODE_ERRORS as e:
        raise InvalidImage(
            f"image is incomplete or corrupt: the pixel data could not be decoded ({e})"
        ) from e


def inspect_image(source: Source) -> ImageInfo:
    """Validates an image completely: allow-listed format, pixel limit, full decode.

    Args:
        source: bytes, a path, or a binary file object (read from its position, then put back).
    Returns:
        ImageInfo with the format found by content and the size after EXIF orientation.
    Raises:
        InvalidImage, UnsupportedFormat, ImageTooLarge.
    """
    data = read_bytes(source)
    with _open(data) as image:
        fmt = image.format
        width, height = image.size
        _decode(image)
        if orientation(image) in (5, 6, 7, 8):
            width, height = height, width
    return ImageInfo(format=fmt, width=width, height=height)


# --- to RGB -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageHeader:
    """What a file's header says, read with `load_rgb`'s checks but without decoding the pixels.

    Attributes:
        data: the file's bytes.
        format: Pillow's format name ("JPEG", "PNG", ...).
        mode: Pillow's mode of the stored pixels ("RGB" for YCbCr JPEGs, "L", "CMYK", ...).
        size: (width, height) as stored, before the EXIF orientation.
        orientation: the EXIF orientation, 1..8.
    """

    data: bytes
    format: str
    mode: str
    size: tuple[int, int]
    orientation: int


def read_header(source: Source) -> ImageHeader:
    """Reads a file and its header (allow-listed format, pixel limit) for a decoder elsewhere (a GPU's).

    Raises:
        InvalidImage, UnsupportedFormat, ImageTooLarge, as `load_rgb` does before decoding.
    """
    data = read_bytes(source)
    image = _open(data)
    try:
        return ImageHeader(data, str(image.format), image.mode, image.size, orientation(image))
    finally:
        image.close()


def decoded_pixels(header: ImageHeader, target_size: int | None = None) -> int:
    """How many pixels `load_rgb(..., target_size=target_size)` will decode for this header: JPEGs at
    the reduced DCT scale (1/2, 1/4, 1/8) that still covers target_size, everything else in full."""
    width, height = header.size
    if target_size and header.format == "JPEG":
        for scale in (8, 4, 2):
            if min(width, height) // scale >= target_size:
                return -(-width // scale) * -(-height // scale)
    return width * height


def load_rgb(source: Source, *, target_size: int | None = None) -> Image.Image:
    """Decodes an untrusted image to an upright RGB image with the same checks as `inspect_image`.

    Args:
        source: bytes, a path, or a binary file object.
        target_size: the short side the caller will resize to; large JPEGs are then decoded at a
            reduced scale (DCT scaling) that still keeps at least this many pixels on the short side.
    Returns:
        A PIL image in mode RGB, detached from any file (first frame of an animation).
    Raises:
        InvalidImage, UnsupportedFormat, ImageTooLarge.
    """
    data = read_bytes(source)
    # No `with`: closing would destroy the pixel core that an RGB result shares with `image`.
    image = _open(data)
    try:
        return upright_rgb(image, target_size)
    except Image.DecompressionBombError as e:
        raise ImageTooLarge(f"the image is too large to process (more than {MAX_PIXELS:,} pixels)") from e
    except _DECODE_ERRORS as e:
        raise InvalidImage(
            f"image is incomplete or corrupt: the pixel data could not be decoded ({e})"
        ) from e


def require_min_size(source: Source) -> None:
    """Refuse, from the header alone, an image with fewer than MIN_SIDE pixels on a side.

    Raises:
        ImageTooSmall; and as `inspect_image` for what is not an image at all.
    """
    with _open(read_bytes(source)) as image:
        width, height = image.size
    if min(width, height) < MIN_SIDE:
        raise ImageTooSmall(
            f"the image is {width}x{height} pixels; a model needs at least {MIN_SIDE} on each side "
            "to see anything in it"
        )


def stored_form(data: bytes) -> tuple[bytes, ImageInfo]:
    """The bytes to keep for an uploaded image, checked: as they came, or a JPEG for formats browsers
    cannot show (HEIC), upright, with the same checks as `inspect_image`.

    The conversion is deterministic, so the same HEIC photo uploaded twice is still one image.

    Raises:
        InvalidImage, UnsupportedFormat, ImageTooLarge.
    """
    info = inspect_image(data)
    require_min_size(data)
    if info.format in STORED_FORMATS:
        return data, info
    rgb = load_rgb(data)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=CONVERTED_JPEG_QUALITY)
    converted = buffer.getvalue()
    return converted, ImageInfo(format="JPEG", width=rgb.width, height=rgb.height)


# --- to tensor --------------------------------------------------------------------------------------


def resize_crop_box(width: int, height: int, prep: Preprocessing) -> tuple[tuple[int, int], tuple[int, int]]:
    """pixels.resize_crop_box for a Preprocessing."""
    return pixels.resize_crop_box(width, height, prep.resize, prep.crop)


def scale_bias(prep: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """pixels.scale_bias for a Preprocessing: (scale, bias), float32 [3]; the CPU and device paths use them."""
    return pixels.scale_bias(prep.mean, prep.std)


def frame_box(width: int, height: int, prep: Preprocessing) -> tuple[float, float, float, float]:
    """pixels.frame_box for a Preprocessing: the part of the picture the network sees."""
    return pixels.frame_box(width, height, prep.resize, prep.crop, prep.framing)


def preprocess(image: Image.Image, prep: Preprocessing) -> np.ndarray:
    """An RGB picture (from `load_rgb`) as the network's input, float32 [3, crop, crop] (pixels.to_tensor)."""
    return pixels.to_tensor(
        image,
        resize=prep.resize,
        crop=prep.crop,
        mean=prep.mean,
        std=prep.std,
        interpolation=prep.interpolation,
        framing=prep.framing,
    )


def load_batch(sources: Iterable[Source], prep: Preprocessing) -> np.ndarray:
    """Decodes and preprocesses several images.

    Args:
        sources: bytes, paths or binary file objects.
        prep: the backbone's preprocessing.
    Returns:
        float32 array [N, 3, crop, crop]. Raises the first image error it meets.
    """
    arrays = [preprocess(load_rgb(s, target_size=prep.resize), prep) for s in sources]
    if not arrays:
        return np.zeros((0, 3, prep.crop, prep.crop), dtype=np.float32)
    return np.stack(arrays)
