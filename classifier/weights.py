"""Installing a torchvision weights file on a host that cannot download it.

torchvision publishes each ImageNet checkpoint under a name that ends with the first hex digits of its
SHA-256 (`vgg16-397923af.pth`). A file copied from a machine with internet, under any name, is matched
to a backbone by that hash, and copied into the torch hub cache (`<TORCH_HOME>/hub/checkpoints/`) under
its published name, where an offline host reads it:

    python -m classifier import-weights ~/Downloads/vgg16-397923af.pth
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from .backbones import BACKBONES, Backbone, torch_hub_dir
from .errors import BackboneUnavailable

_CHUNK = 1 << 20


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def published_prefix(backbone: Backbone) -> str:
    """The hash prefix in a torchvision weights file's published name ("" for packaged weights)."""
    if backbone.source != "torchvision":
        return ""
    return Path(backbone.weights_file).stem.rsplit("-", 1)[-1]


def backbone_for(digest: str) -> Backbone | None:
    """The registry's backbone whose published weights have this SHA-256, or None."""
    for backbone in BACKBONES.values():
        prefix = published_prefix(backbone)
        if prefix and digest.startswith(prefix):
            return backbone
    return None


def import_weights(source: str | os.PathLike, *, check: bool = True) -> dict:
    """Install a weights file into the hub cache this host reads.

    Args:
        source: the file, under any name.
        check: also build the network from it (loads the whole file once).
    Returns:
        {"backbone", "installed" (the path), "sha256", "already": whether the same file was there}.
    Raises:
        BackboneUnavailable: not a file, or not any registry backbone's published weights.
    """
    source = Path(source)
    if not source.is_file():
        raise BackboneUnavailable(f"{source} is not a file")
    digest = sha256_of(source)
    backbone = backbone_for(digest)
    if backbone is None:
        known = ", ".join(f"{b.name} ({b.weights_file})" for b in BACKBONES.values() if published_prefix(b))
        raise BackboneUnavailable(
            f"{source.name} (sha256 {digest[:12]}…) is not the published weights of any backbone here; "
            f"expected one of: {known}"
        )
    target = torch_hub_dir() / "checkpoints" / backbone.weights_file
    already = target.is_file() and sha256_of(target) == digest
    if not already:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".import-", suffix=".pth")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    if check:
        backbone.build(pretrained=True)  # raises BackboneUnavailable for a file that does not fit
    return {"backbone": backbone.name, "installed": str(target), "sha256": digest, "already": already}
