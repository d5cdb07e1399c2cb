"""Shared helpers for the benchmarks: where the data is, and how to print a result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
HYMENOPTERA = DATASETS / "hymenoptera"


def require_dataset() -> Path:
    if not (HYMENOPTERA / "train").is_dir():
        sys.exit(f"bench: {HYMENOPTERA} is missing; the benchmarks need ../shared/datasets/hymenoptera")
    return HYMENOPTERA


def report(name: str, result: dict) -> dict:
    print(json.dumps({"bench": name, **result}), flush=True)
    return result
