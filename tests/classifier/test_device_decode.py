"""Decoding on the network's device: the same pixels as the CPU path, the same errors, the same hashes.

These run torchvision's CPU decoder through the very code that uses nvJPEG on a GPU host; the last test
runs it on CUDA where a GPU is present (`gpu` marker).
"""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pytest
from PIL import Image

from classifier.audit import PERCEPTUAL_HASH
from classifier.backbones import get_backbone
from classifier.cache import MemoryCache
from classifier.device_decode import Item, decode_batch, jpeg_decoders, orient, read_item, resized_crop
from classifier.errors import ImageTooLarge, InvalidImage, UnsupportedFormat
from classifier.features import Extractor, sha256_of
from classifier.preprocessing import load_rgb, preprocess

torch = pytest.importorskip("torch")

PREP = get_backbone("efficientnet_lite0").preprocessing
# In normalised units (one grey level is 2/255 = 0.0078 for Lite0): measured 0.0010-0.0017 mean and
# at most 0.039 on scikit-learn's sample photos against Pillow's resize of the same file, and 0.0048 mean
# for a 3000x2000 photo, which Pillow decodes at a quarter of its size (DCT scaling) before resizing.
MEAN_TOLERANCE, MAX_TOLERANCE = 0.006, 0.07
DECODERS = jpeg_decoders()


def photo(size=(640, 427), quality=92, exif_orientation: int | None = None) -> bytes:
    """A real photo (scikit-learn's sample) resized and saved as JPEG, optionally tagged with an orientation."""
    from sklearn.datasets import load_sample_image

    image = Image.fromarray(load_sample_image("china.jpg")).resize(size)
    buf = io.BytesIO()
    params = {"quality": quality}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        params["exif"] = exif.tobytes()
    image.save(buf, "JPEG", **params)
    return buf.getvalue()


def on_device(data: bytes, decoder: str = next(iter(DECODERS))):
    return DECODERS[decoder].decode([torch.frombuffer(bytearray(data), dtype=torch.uint8)], "cpu")[0]


def assert_close_to_cpu(out: np.ndarray, ref: np.ndarray) -> None:
    diff = np.abs(out - ref)
    assert diff.mean() < MEAN_TOLERANCE and diff.max() < MAX_TOLERANCE, (diff.mean(), diff.max())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_it_turns_an_image_upright_as_pillow_does(orientation):
    from classifier.pixels import TRANSPOSE as _TRANSPOSE

    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    expected = image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image
    got = orient(torch.from_numpy(pixels).permute(2, 0, 1), orientation).permute(1, 2, 0).numpy()
    np.testing.assert_array_equal(got, np.asarray(expected))


@pytest.mark.parametrize("size", [(640, 427), (300, 500), (230, 260), (3000, 2000)])
@pytest.mark.parametrize("framing", ["crop", "full"])
@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_it_resizes_and_crops_as_the_cpu_path_does(size, framing, interpolation):
    prep = dataclasses.replace(PREP, framing=framing, interpolation=interpolation)
    data = photo(size)
    out = resized_crop(on_device(data), prep).numpy()
    assert out.shape == (3, prep.crop, prep.crop) and out.dtype == np.float32
    assert_close_to_cpu(out, preprocess(load_rgb(data, target_size=prep.resize), prep))


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_a_batch_mixes_device_and_cpu_decoding_and_reports_bad_files_in_place(imgs, decoder):
    views = [(PREP, False), (dataclasses.replace(PREP, framing="full"), True)]
    good = photo((500, 375))
    rotated = photo((500, 375), exif_orientation=6)
    png = imgs.encode(imgs.gradient((90, 60)), "PNG")
    cmyk = imgs.encode(imgs.gradient((90, 60)).convert("CMYK"), "JPEG")
    truncated = good[: len(good) // 2]
    items = [read_item(d, views, None) for d in (good, png, truncated, rotated, cmyk)]
    # The CPU keeps what the device cannot decode; JPEGs travel as bytes.
    assert [item.arrays is None for item in items] == [True, False, True, True, False]
    tensor, kept, errors = decode_batch(items, views, "cpu", DECODERS[decoder])
    assert kept == [0, 1, 3, 4]
    assert [i for i, _ in errors] == [2] and isinstance(errors[0][1], InvalidImage)
    assert "incomplete" in str(errors[0][1])
    assert tensor.shape == (len(kept) * len(views), 3, 224, 224)
    for row, data in enumerate((good, png, rotated, cmyk)):
        image = load_rgb(data, target_size=256)
        for v, (prep, mirrored) in enumerate(views):
            ref = preprocess(image, prep)
            ref = ref[:, :, ::-1] if mirrored else ref
            assert_close_to_cpu(tensor[row * len(views) + v].numpy(), ref)


def test_it_refuses_what_the_cpu_path_refuses_before_any_decoding(imgs):
    with pytest.raises(UnsupportedFormat, match="TIFF"):
        read_item(imgs.encode(imgs.gradient((8, 8)), "TIFF"), [(PREP, False)], None)
    with pytest.raises(ImageTooLarge):
        read_item(imgs.png_header_only(20_000, 20_000), [(PREP, False)], None)
    with pytest.raises(InvalidImage):
        read_item(b"garbage bytes", [(PREP, False)], None)


def test_it_hashes_the_pixels_the_cpu_path_hashes():
    data = photo((700, 500))
    item = read_item(data, [(PREP, False)], PERCEPTUAL_HASH.compute)
    assert item.arrays is None and item.data == data  # the pixels still go to the device
    np.testing.assert_array_equal(item.hash, PERCEPTUAL_HASH.compute(load_rgb(data, target_size=256)))


def test_decode_batch_of_nothing_usable_runs_nothing():
    tensor, kept, errors = decode_batch([Item(b"\xff\xd8\xff not really", 1, (8, 8))], [(PREP, False)], "cpu")
    assert tensor is None and kept == [] and len(errors) == 1


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """One random-weight network, decoding on the CPU and on the device (here: the CPU, through torch)."""
    torch.manual_seed(0)
    cpu = Extractor("efficientnet_lite0", pretrained=False, engine="torch", device="cpu", decode="cpu").load()
    device = Extractor("efficientnet_lite0", pretrained=False, engine="torch", device="cpu", decode="device")
    device._net = cpu._net  # the same random weights
    return cpu, device


def test_the_extractor_decoding_on_the_device_agrees_with_the_cpu_path(pair, sample_images, imgs):
    cpu, device = pair
    images = [*sample_images, photo((640, 427)), photo((500, 375), exif_orientation=8)]
    bad = {"a" * 64: b"garbage bytes", "b" * 64: photo((200, 150))[:500]}
    items = [(sha256_of(d), d) for d in images] + list(bad.items())
    views = [device, device.variant(mirrored=True)]
    results = device.extract_views(items, views, MemoryCache(), batch_size=4, image_hash=PERCEPTUAL_HASH)
    expected = cpu.extract_views(items, [cpu, cpu.variant(mirrored=True)], None, image_hash=PERCEPTUAL_HASH)
    for got, want in zip(results, expected, strict=True):
        assert got.failed == want.failed and set(bad) == set(got.failed)
        assert got.vectors.keys() == want.vectors.keys()
        for sha, vector in want.vectors.items():
            v = got.vectors[sha]
            assert v @ vector / (np.linalg.norm(v) * np.linalg.norm(vector)) > 0.999
    assert results[0].hashes.keys() == expected[0].hashes.keys()
    for sha, h in expected[0].hashes.items():
        np.testing.assert_array_equal(results[0].hashes[sha], h)
    assert results[0].n_decoded == len(images)


def test_torchcodec_is_preferred_where_installed():
    assert list(DECODERS)[-1] == "torchvision"  # always there: torchvision ships with torch here
    data = photo((300, 200))
    first = [on_device(data, name) for name in DECODERS]
    for other in first[1:]:
        assert torch.equal(first[0], other)  # both are libjpeg-turbo on a CPU: the same pixels


def test_device_decoding_needs_the_torch_engine():
    with pytest.raises(ValueError, match="engine='torch'"):
        Extractor("efficientnet_lite0", pretrained=False, device="cpu", engine="onnx", decode="device")
    assert Extractor("efficientnet_lite0", pretrained=False, device="cpu").decode == "cpu"


@pytest.mark.gpu
@pytest.mark.parametrize("decoder", list(DECODERS))
def test_nvjpeg_on_cuda_gives_the_cpu_decoders_pixels(imgs, decoder):
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    views = [(PREP, False), (PREP, True)]
    datas = [photo((640, 427)), photo((3000, 2000), exif_orientation=6), imgs.encode(imgs.gradient(), "PNG")]
    items = [read_item(d, views, None) for d in datas]
    on_gpu, kept, errors = decode_batch(items, views, "cuda", DECODERS[decoder])
    on_cpu, _, _ = decode_batch(items, views, "cpu", DECODERS[decoder])
    assert kept == [0, 1, 2] and not errors and on_gpu.is_cuda
    diff = (on_gpu.float().cpu() - on_cpu).abs()
    assert float(diff.mean()) < MEAN_TOLERANCE and float(diff.max()) < 4 * MAX_TOLERANCE
