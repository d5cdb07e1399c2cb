"""Feature extraction end to end (decode included): this host's engine vs the fp32 ONNX Runtime pipeline
and eager PyTorch, same photos, same run.

Targets: at least 2x the fp32 pipeline and at least 10x eager PyTorch on hymenoptera/train.
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
