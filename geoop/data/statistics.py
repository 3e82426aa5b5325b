"""Deterministic splits and per-field statistics of a dataset."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def make_splits(indices: list[int], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
                ) -> dict[str, list[int]]:
    """Sample ids into train/val/test by a seeded permutation; each split sorted. Val and test get at least
    one sample each when there are three or more."""
    ids = np.array(sorted(indices))
    order = ids[np.random.default_rng(seed).permutation(len(ids))]
    n_val = int(round(fractions[1] * len(ids)))
    n_test = int(round(fractions[2] * len(ids)))
    if len(ids) >= 3:
        n_val, n_test = max(n_val, 1), max(n_test, 1)
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": sorted(train.tolist()), "val": sorted(val.tolist()), "test": sorted(test.tolist())}


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
