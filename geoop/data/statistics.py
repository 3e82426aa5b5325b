"""Per-field statistics of a dataset (of its training split)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def field_statistics(root: str | Path, files: list[str], fields: dict[str, dict]) -> dict[str, Any]:
    """Per-component mean, std, min and max of every input and target field over `files` (where masked,
    over the masked points only)."""
    specs = {**fields["inputs"], **fields["targets"]}
    acc = {name: [] for name in specs}
    for f in files:
        with np.load(Path(root) / f) as z:
            for name, spec in specs.items():
                value = z[f"point_data:{name}"].reshape(-1, spec["components"]).astype(np.float64)
                if spec.get("mask"):
                    value = value[z[f"point_data:{spec['mask']}"].astype(bool)]
                acc[name].append(value)
    out = {}
    for name, parts in acc.items():
        if not parts:
            continue
        v = np.concatenate(parts)
        out[name] = {"mean": v.mean(0).tolist(), "std": v.std(0).tolist(), "min": v.min(0).tolist(),
                     "max": v.max(0).tolist(), "count": len(v)}
    return out
