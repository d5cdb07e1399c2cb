"""What travels with every export besides the model: its description, labels, the picture preparation,
a predict.py and a README for people who use it without Pinhole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from .formats import Format

INFO_FILE = "pinhole.json"
LABELS_FILE = "labels.txt"
PIXELS_FILE = "pinhole_pixels.py"
PREDICT_FILE = "predict.py"
README_FILE = "README.md"

_HERE = Path(__file__).resolve().parent
_PIXELS_SOURCE = _HERE.parent / "pixels.py"
_PREDICT_SOURCE = _HERE / "standalone.py"

# Only what someone using the model needs to know; the rest of the manifest is Pinhole's own business.
_MANIFEST_KEYS = ("labels", "task_type", "thresholds", "preprocessing", "backbone", "strategy")


def describe(manifest: dict, fmt: Format, model_files: list[str], version: str = "") -> dict:
    """The export's pinhole.json: format, model file, labels, preprocessing and how it was made."""
    info = {k: manifest[k] for k in _MANIFEST_KEYS if k in manifest}
    info.setdefault("task_type", "single_label")
    return {
        "format": fmt.name,
        "model_file": fmt.model_file,
        "files": model_files,
        **info,
        "input": {"name": "images", "layout": "NCHW", "dtype": "float32"},
        "output": {"name": "probabilities", "activation": _activation(info)},
        "version": version,
        "manifest_sha256": manifest.get("manifest_sha256", ""),
    }


def _activation(info: dict) -> str:
    return "sigmoid" if info.get("task_type") == "multi_label" else "softmax"


def write_info(directory: Path, info: dict) -> None:
    (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def write_companions(directory: Path, info: dict, fmt: Format) -> list[str]:
    """Write labels.txt, pinhole_pixels.py, predict.py (where the format runs here) and README.md.

    Returns: the file names written."""
    (directory / LABELS_FILE).write_text("".join(f"{name}\n" for name in info["labels"]))
    shutil.copyfile(_PIXELS_SOURCE, directory / PIXELS_FILE)
    written = [LABELS_FILE, PIXELS_FILE]
    if fmt.checked:
        shutil.copyfile(_PREDICT_SOURCE, directory / PREDICT_FILE)
        written.append(PREDICT_FILE)
    (directory / README_FILE).write_text(readme(info, fmt))
    return [*written, README_FILE]


_RUN = {
    "onnx": "pip install onnxruntime numpy pillow",
    "onnx-int8": "pip install onnxruntime numpy pillow",
    "openvino": "pip install openvino numpy pillow",
    "tflite": "pip install ai-edge-litert numpy pillow",
}

# Formats whose model takes a batch of any size (the others take one picture at a time).
_BATCHED = ("onnx", "onnx-int8", "openvino")

_CORE_ML_SWIFT = """```swift
let model = try MLModel(contentsOf: compiledURL)   // xcrun coremlc compile model.mlpackage .
let input = try MLDictionaryFeatureProvider(dictionary: ["images": pixels])  // MLMultiArray [1, 3, {crop}, {crop}]
let answer = try model.prediction(from: input)
print(answer.featureValue(for: "classLabel")!, answer.featureValue(for: "classLabel_probs")!)
```"""


def readme(info: dict, fmt: Format) -> str:
    """A README for someone who has only this directory."""
    p = info["preprocessing"]
    labels = info["labels"]
    multi = info.get("task_type") == "multi_label"
    parity = info.get("parity") or {}
    batch = "N" if fmt.name in _BATCHED else "1"
    lines = [
        f"# {fmt.title} model from Pinhole",
        "",
        fmt.note,
        "",
        f"Labels ({len(labels)}, in the order of the model's outputs; also in `{LABELS_FILE}`): "
        + ", ".join(f"`{name}`" for name in labels[:50])
        + (" ..." if len(labels) > 50 else ""),
        "",
        "## Input",
        "",
        f"One float32 tensor `images` of shape [{batch}, 3, {p['crop']}, {p['crop']}] (channels first, RGB), made "
        "from a picture exactly as Pinhole's site makes it:",
        "",
        "1. decode it and turn it upright as its EXIF orientation says; transparency goes on white; a JPEG "
        f"larger than twice {p['resize']} pixels on its short side is decoded at a reduced scale "
        "(Pillow's `draft`);",
        (
            f"2. resize it so its short side is {p['resize']} pixels and keep the centre {p['crop']} x "
            f"{p['crop']} ({p.get('interpolation', 'bilinear')}, Pillow's filter computed on the crop's box);"
            if p.get("framing", "crop") == "crop"
            else f"2. squeeze the whole picture to {p['crop']} x {p['crop']} ({p.get('interpolation')});"
        ),
        f"3. divide by 255, subtract the mean {p['mean']} and divide by the standard deviation {p['std']}.",
        "",
        f"`{PIXELS_FILE}` does all of it (`pinhole_pixels.load(path, preprocessing)`, with the "
        f"`preprocessing` of `{INFO_FILE}`); it needs only NumPy and Pillow. Another resize or decoder moves "
        "probabilities by up to about 0.01.",
        "",
        "## Output",
        "",
        (
            f"`probabilities` [{batch}, labels]: each label's own probability (sigmoid); a label is present at or above "
            f"its threshold in `{INFO_FILE}` (`thresholds`)."
            if multi
            else f"`probabilities` [{batch}, labels]: they sum to one (softmax); the answer is the largest."
        ),
        "",
        "## Run it",
        "",
    ]
    if fmt.checked:
        lines += [
            "```sh",
            _RUN[fmt.name],
            f"python {PREDICT_FILE} photo.jpg",
            "```",
            "",
            "or `from predict import Model; Model().predict('photo.jpg')` from Python.",
        ]
    else:
        lines += [fmt.no_linux_runtime + ".", "", _CORE_ML_SWIFT.replace("{crop}", str(p["crop"]))]
    if parity:
        lines += [
            "",
            "## Checked",
            "",
            f"Before Pinhole offered this export it compared its answers with the site's own on "
            f"{parity['pictures']} pictures ({parity['method']}): the same top label on "
            f"{parity['top_agreement']:.1%}, every probability within {parity['max_difference']:.2g} "
            f"(allowed: {parity['tolerance']:g}).",
        ]
    return "\n".join(lines) + "\n"
