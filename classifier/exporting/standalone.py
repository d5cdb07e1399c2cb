"""Label pictures with a model exported by Pinhole, without Pinhole.

    python predict.py photo.jpg [more.jpg ...]     one JSON line per picture

or from Python:

    from predict import Model
    model = Model()                                # the export's own directory
    model.predict("photo.jpg")                     # {"label": ..., "probability": ..., "top": [...]}

Needs NumPy, Pillow and the runtime of the export's format: onnxruntime (ONNX), openvino (OpenVINO IR)
or ai-edge-litert (LiteRT). Pictures are prepared by pinhole_pixels.py, the same file the site uses, so
the answers are the site's.

(Inside Pinhole this file is classifier/exporting/standalone.py; each export carries it as predict.py,
and Pinhole checks every export through it before offering it.)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

try:
    import pinhole_pixels as pixels
except ImportError:  # run from inside Pinhole
    from classifier import pixels

HERE = Path(__file__).resolve().parent
INFO_FILE = "pinhole.json"


def _onnxruntime(path: Path):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(["probabilities"], {name: batch})[0]


def _openvino(path: Path):
    import openvino

    # fp32 arithmetic: on CPUs with bf16 units OpenVINO would otherwise pick bf16, which moves
    # probabilities by up to about 0.02 (faster: drop the hint).
    compiled = openvino.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    output = compiled.output("probabilities")
    return lambda batch: compiled(batch)[output]


def _litert(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    [source] = interpreter.get_input_details()
    [target] = interpreter.get_output_details()

    def run(batch):
        rows = []
        for image in batch:  # the model takes one picture at a time
            interpreter.set_tensor(source["index"], image[None])
            interpreter.invoke()
            rows.append(interpreter.get_tensor(target["index"])[0].copy())
        return np.stack(rows)

    return run


RUNTIMES = {"onnx": _onnxruntime, "onnx-int8": _onnxruntime, "openvino": _openvino, "tflite": _litert}


class Model:
    """An exported model, loaded once.

    Args:
        directory: the export's directory (default: the one this file is in).
    """

    def __init__(self, directory: str | Path = HERE):
        self.directory = Path(directory)
        self.info = json.loads((self.directory / INFO_FILE).read_text())
        self.labels: list[str] = list(self.info["labels"])
        self.multi_label = self.info.get("task_type") == "multi_label"
        self.thresholds: dict[str, float] = dict(self.info.get("thresholds") or {})
        fmt = self.info["format"]
        if fmt not in RUNTIMES:
            raise SystemExit(f"{fmt} models cannot run on this system; see README.md")
        self._run = RUNTIMES[fmt](self.directory / self.info["model_file"])

    def tensor(self, picture) -> np.ndarray:
        """A picture (path or binary file) as the network's input [1, 3, crop, crop]."""
        return pixels.load(picture, self.info["preprocessing"])

    def probabilities(self, batch: np.ndarray) -> np.ndarray:
        """The network's probabilities [N, K] for prepared pictures [N, 3, crop, crop]."""
        return np.asarray(self._run(np.ascontiguousarray(batch, dtype=np.float32)), dtype=np.float32)

    def predict(self, picture, top_k: int = 5) -> dict:
        """One picture's answer: its label, probability and top labels (multi-label: every label
        with its probability and whether it is present, at or above its threshold)."""
        row = self.probabilities(self.tensor(picture))[0]
        order = np.argsort(-row, kind="stable")[: max(1, top_k)]
        answer = {
            "label": self.labels[int(order[0])],
            "probability": float(row[order[0]]),
            "top": [{"label": self.labels[i], "probability": float(row[i])} for i in order],
        }
        if self.multi_label:
            answer["labels"] = [
                {"label": name, "probability": float(p), "present": bool(p >= self.thresholds.get(name, 0.5))}
                for name, p in zip(self.labels, row, strict=True)
            ]
        return answer


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python predict.py PICTURE [PICTURE ...]", file=sys.stderr)
        return 2
    model = Model()
    for picture in argv:
        try:
            print(json.dumps({"picture": picture, **model.predict(picture)}))
        except OSError as exc:
            print(json.dumps({"picture": picture, "error": str(exc)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
