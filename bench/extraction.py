"""Feature extraction end to end (decode included): ONNX Runtime vs eager PyTorch, same run.

Target: at least 100 images/s on hymenoptera/train and at least 5x eager PyTorch.
    .venv/bin/python -m bench.extraction
"""

from bench.common import report, require_dataset
from classifier.backbones import DEFAULT_BACKBONE
from classifier.benchmark import extraction_benchmark


def main() -> dict:
    root = require_dataset()
    paths = sorted(p for p in (root / "train").rglob("*") if p.is_file())
    return report("extraction", extraction_benchmark(paths, backbone=DEFAULT_BACKBONE, eager_limit=64))


if __name__ == "__main__":
    main()
