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


def mesh_spacing(geometries: list, percentiles: tuple[float, ...] = (0, 1, 50, 99, 100)) -> dict[str, Any] | None:
    """Percentiles of the mesh spacing at the nodes of `geometries` (the shortest cell edge at each node),
    and the grading: the ratio of the 99th to the 1st percentile. None for bare point clouds."""
    from geoop.geometry.cells import unique_edges

    parts = []
    for g in geometries:
        if not g.cells:
            continue
        edges = unique_edges(g.cells)
        length = np.linalg.norm(g.points[edges[:, 0]] - g.points[edges[:, 1]], axis=1)
        shortest = np.full(g.n_points, np.inf)
        np.minimum.at(shortest, edges[:, 0], length)
        np.minimum.at(shortest, edges[:, 1], length)
        parts.append(shortest[np.isfinite(shortest)])
    if not parts:
        return None
    h = np.concatenate(parts)
    values = np.percentile(h, percentiles)
    return {"percentiles": {f"p{p:g}": float(v) for p, v in zip(percentiles, values, strict=True)},
            "grading": float(np.percentile(h, 99) / max(np.percentile(h, 1), 1e-300)), "samples": len(parts)}
