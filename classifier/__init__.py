"""Pinhole's transfer-learning engine, free of Django.

Stage 1 is a backbone pretrained on ImageNet (backbones.py, the registry; lite.py, EfficientNet-Lite0
written out). Stage 2 turns each image into the pooled output of the layer before the backbone's
classifier (and of earlier blocks, whole and on a grid), once, and caches it (features.py, cache.py).
Stage 3 trains a new classifier on those vectors, adapting the last blocks or the whole network when
there is enough data and a GPU (heads.py, fit.py, finetune.py, optim.py), in the named steps of steps.py that
pipeline.py runs; analyse.py, audit.py and unknown.py say what to check and what is a guess.
A finished model is a checked artifact directory (artifacts.py) that `Predictor` (predict.py) serves
through ONNX Runtime without importing torch.

Importing this package imports neither Django nor torch; the modules that need torch import it.
"""

__version__ = "0.1.0"
