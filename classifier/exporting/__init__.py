"""Exports of a model version to the formats people deploy to (ONNX fp32 and int8, OpenVINO IR, LiteRT,
Core ML), each checked against the version's own answers before it is offered.

- formats.py: the table of formats and the parity thresholds;
- convert.py: each format's converter (torch_graph.py for the ones that start from PyTorch);
- parity.py: the check; standalone.py: the predict.py every runnable export ships and is checked through;
- bundle.py: pinhole.json, labels, the picture preparation (classifier/pixels.py) and a README;
- build.py: export_version, the steps in order.
"""

from .build import ExportResult, export_version
from .formats import FORMATS, UNAVAILABLE

__all__ = ["FORMATS", "UNAVAILABLE", "ExportResult", "export_version"]
