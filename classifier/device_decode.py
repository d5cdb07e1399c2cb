"""Decoding and preprocessing photos on the device that runs the network (nvJPEG on CUDA, via torchvision).

On a GPU host the CPU cannot decode JPEGs as fast as the GPU runs the network, so the pixels are decoded,
turned upright, resized, cropped and normalised where the network runs, a batch at a time. The CPU still
reads every file's header with the checks of `preprocessing.load_rgb` (allow-listed formats, the pixel
limit, EXIF orientation), so bad input fails with the same message. What the device does not decode (PNG,
GIF, WebP, BMP, CMYK JPEGs, a JPEG its decoder rejects) is decoded on the CPU as before and joins the batch.

Hashes need the same pixels on every host (they are cached under one key), so when a hash is asked for,
the CPU decodes that image as `load_rgb` would and hashes it; a 1/8-scale decode would be cheaper, but
its hashes differ by 2 bits on average (up to 10) from the full decode's on hymenoptera.

The same code runs on a CPU device (torchvision's libjpeg-turbo decoder): that is how it is tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from classifier.data import resolve
from classifier.errors import ImageError
from classifier.preprocessing import (
    Preprocessing,
    Source,
    load_rgb,
    preprocess,
    read_header,
    resize_crop_box,
    scale_bias,
)

View = tuple[Preprocessing, bool]  # (preprocessing, mirrored)

# JPEG colour modes the device decoders handle (YCbCr and greyscale); CMYK and the rest go to the CPU.
DEVICE_MODES = ("RGB", "L")


@dataclass
class Item:
    """One image as the CPU left it: its bytes for the device, or its views already decoded.

    Attributes:
        data: the file's bytes (None once decoded on the CPU).
        orientation: its EXIF orientation, 1..8.
        size: (width, height) as stored, before the orientation.
        arrays: its views' float32 [3, crop, crop] arrays when the CPU decoded it, else None.
        hash: its hash, when one was asked for.
    """

    data: bytes | None
    orientation: int
    size: tuple[int, int] = (0, 0)
    arrays: list[np.ndarray] | None = None
    hash: np.ndarray | None = None


def cpu_views(image, views: Sequence[View]) -> list[np.ndarray]:
    """The views of one upright RGB PIL image, as the CPU path makes them."""
    arrays, made = [], {}
    for prep, mirrored in views:
        if prep not in made:
            made[prep] = preprocess(image, prep)
        # Mirrored copies are training augmentation: a bee facing left is still a bee.
        arrays.append(np.ascontiguousarray(made[prep][:, :, ::-1]) if mirrored else made[prep])
    return arrays


def read_item(source: Source, views: Sequence[View], hash_fn: Callable[[Any], np.ndarray] | None) -> Item:
    """The CPU's part for one image (runs on the decoding threads).

    Raises:
        ImageError: as `load_rgb` would, for a file that is not an acceptable image.
    """
    header = read_header(resolve(source))
    on_device = header.format == "JPEG" and header.mode in DEVICE_MODES
    if on_device and hash_fn is None:
        return Item(header.data, header.orientation, header.size)
    image = load_rgb(header.data, target_size=max(prep.resize for prep, _ in views))
    image_hash = hash_fn(image) if hash_fn is not None else None
    if on_device:
        return Item(header.data, header.orientation, header.size, hash=image_hash)
    return Item(None, header.orientation, header.size, arrays=cpu_views(image, views), hash=image_hash)


def orient(image, orientation: int):
    """Turns a decoded [C, H, W] tensor upright, as PIL's transposes for EXIF orientations 1..8 do."""
    import torch

    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-2, -1)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-2, -1)
    if orientation == 6:
        return torch.rot90(image, -1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-2, -1).flip(-2, -1)
    if orientation == 8:
        return torch.rot90(image, 1, dims=(-2, -1))
    return image


def resized_crop(image, prep: Preprocessing):
    """A uint8 [3, H, W] tensor resized and cropped as `preprocessing.preprocess` does, on its device.

    Resize the short side to prep.resize (antialiased, rounded to 8 bits as Pillow's result is), then
    crop the centre (framing "full": squeeze the whole frame to crop x crop), then normalise.
    Returns: float32 [3, crop, crop].
    """
    import torch.nn.functional as F

    height, width = image.shape[-2:]
    if prep.framing == "full":
        size, (left, top) = (prep.crop, prep.crop), (0, 0)
    else:
        size, (left, top) = resize_crop_box(width, height, prep)
    mode = prep.interpolation if prep.interpolation in ("bilinear", "bicubic") else "bilinear"
    resized = F.interpolate(
        image[None].float(), size=(size[1], size[0]), mode=mode, antialias=True, align_corners=False
    )[0]
    crop = resized[:, top : top + prep.crop, left : left + prep.crop].round_().clamp_(0, 255)
    scale, bias = _scale_bias(prep, str(image.device))
    return crop * scale + bias


@lru_cache(maxsize=16)
def _scale_bias(prep: Preprocessing, device: str):
    """preprocessing.scale_bias as [3, 1, 1] tensors kept on the device (no copy per image)."""
    import torch

    scale, bias = scale_bias(prep)
    return torch.from_numpy(scale).view(3, 1, 1).to(device), torch.from_numpy(bias).view(3, 1, 1).to(device)


@dataclass(frozen=True)
class JpegDecoder:
    """A batch JPEG decoder.

    Attributes:
        decode: (list of encoded uint8 tensors on the CPU, device) -> list of uint8 [3, H, W] tensors on
            the device; raises RuntimeError when any file does not decode.
        upright: whether it applies the EXIF orientation itself.
    """

    decode: Callable
    upright: bool


@lru_cache(maxsize=1)
def jpeg_decoders() -> dict[str, JpegDecoder]:
    """The JPEG decoders installed, best first.

    TorchCodec (BSD-3, the `gpu` extra) is the maintained successor of torchvision's image decoders,
    which are deprecated since torchvision 0.29 but ship with every torchvision, so a GPU image without
    TorchCodec still decodes on the device. Both decode a list in one nvJPEG call on CUDA; TorchCodec
    turns each image upright itself (on the CPU and on CUDA), torchvision leaves that to `orient`.
    """
    decoders: dict[str, JpegDecoder] = {}
    try:
        from torchcodec.decoders import decode_jpeg as codec

        decoders["torchcodec"] = JpegDecoder(
            lambda encoded, device: codec(encoded, mode="RGB", device=device), upright=True
        )
    except (ImportError, OSError, RuntimeError):  # absent, or its native library does not load here
        pass
    import warnings

    from torchvision.io import ImageReadMode, decode_jpeg

    def vision(encoded, device):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "The image decoding", DeprecationWarning)
            return decode_jpeg(encoded, mode=ImageReadMode.RGB, device=device)

    decoders["torchvision"] = JpegDecoder(vision, upright=False)
    return decoders


def _decode_jpegs(items: Sequence[Item], device: str, decoder: JpegDecoder) -> list:
    """Decodes the items' JPEG bytes to upright uint8 [3, H, W] tensors on `device`, all in one call where
    every file decodes, else one by one. Returns: a tensor per item, None where the decoder refused it
    or its result is not the size the header promised (the CPU then decides)."""
    import torch

    encoded = [torch.frombuffer(bytearray(item.data), dtype=torch.uint8) for item in items]
    try:
        images = list(decoder.decode(encoded, device))
    except RuntimeError:
        images = []
        for one in encoded:
            try:
                images.append(decoder.decode([one], device)[0])
            except RuntimeError:
                images.append(None)
    out = []
    for item, image in zip(items, images, strict=True):
        if image is not None and not decoder.upright:
            image = orient(image, item.orientation)
        width, height = item.size if item.orientation < 5 else item.size[::-1]
        out.append(image if image is not None and tuple(image.shape[-2:]) == (height, width) else None)
    return out


def decode_batch(
    items: Sequence[Item], views: Sequence[View], device: str, decoder: JpegDecoder | None = None
):
    """The network's input for a batch, made on `device`.

    Args:
        items: from `read_item`, in order.
        views: (preprocessing, mirrored) per view.
        device: "cuda[:i]" or "cpu".
        decoder: one of `jpeg_decoders()` (default: the best installed).
    Returns:
        (tensor [N_ok * len(views), 3, crop, crop] on the device, image by image and view by view,
         positions in `items` that made it, [(position, error)] for those that did not).
    """
    import torch

    on_device = [i for i, item in enumerate(items) if item.arrays is None]
    decoder = decoder or next(iter(jpeg_decoders().values()))
    images = _decode_jpegs([items[i] for i in on_device], device, decoder) if on_device else []
    decoded = dict(zip(on_device, images, strict=True))
    tensors, kept, errors = [], [], []
    for i, item in enumerate(items):
        if item.arrays is not None:
            tensors += [torch.from_numpy(a).to(device, non_blocking=True) for a in item.arrays]
            kept.append(i)
            continue
        image = decoded[i]
        if image is None:
            # The device's decoder refused it: the CPU decides whether it is an image at all.
            try:
                arrays = cpu_views(load_rgb(item.data, target_size=max(p.resize for p, _ in views)), views)
            except ImageError as e:
                errors.append((i, e))
                continue
            tensors += [torch.from_numpy(a).to(device) for a in arrays]
            kept.append(i)
            continue
        made = {}
        for prep, mirrored in views:
            if prep not in made:
                made[prep] = resized_crop(image, prep)
            tensors.append(made[prep].flip(-1) if mirrored else made[prep])
        kept.append(i)
    if not tensors:
        return None, kept, errors
    return torch.stack(tensors), kept, errors
