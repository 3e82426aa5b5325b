"""What a model sees of one geometry: its fields as PyG `Data` tensors. The dataset loader and `predict`
both build their inputs here, so a prediction sees exactly what training saw."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from geoop.data.pyg import Data

from geoop.errors import FieldError
from geoop.geometry.geometry import Geometry
from geoop.geometry.quadrature import quadrature_weights


def geometry_descriptors(geometry: Geometry) -> np.ndarray:
    """`(2 + 3d,)` global descriptors of a geometry: log measure, boundary fraction, bounding-box corners,
    and the measure-weighted centroid."""
    w = quadrature_weights(geometry)
    measure = float(w.sum())
    centroid = (w[:, None] * geometry.points).sum(0) / max(measure, 1e-300)
    lo, hi = geometry.bounds
    return np.concatenate([[np.log(max(measure, 1e-300)), geometry.boundary_mask.mean()], lo, hi, centroid])


def input_channel_roles(inputs: Sequence[str], specs: Mapping[str, dict]) -> tuple[list[int], list[int]]:
    """Channels of `sample_features`'s x that hold boundary data (the values of masked fields, such as a
    Dirichlet value on its boundary part) and boundary-condition types (their 0/1 masks)."""
    values, types, c = [], [], 0
    for name in inputs:
        n = specs[name]["components"]
        if specs[name].get("mask"):
            values += list(range(c, c + n))
            types.append(c + n)
            c += n + 1
        else:
            c += n
    return values, types


def sample_features(geometry: Geometry, inputs: Sequence[str], specs: Mapping[str, dict],
                    targets: Sequence[str] = (), path: str | Path | None = None) -> Data:
    """`Data` with pos `(N, d)`, x `(N, C_in)` (a masked input is zero off its mask and followed by its 0/1 mask
    channel), y `(N, C_out)` and y_mask `(N, C_out)` when `targets` are given, weight `(N,)` quadrature weights,
    boundary `(N,)`, normal `(N, d)` (zero where undefined), globals `(1, 2 + 3d)`. Floats are float32.

    `specs[name]` holds "components" and "mask" (the name of a 0/1 point field, or None) of every field."""
    path = path or geometry.source

    def field(name: str, role: str) -> np.ndarray:
        if name not in geometry.point_data:
            raise FieldError(f"{role} field {name!r} missing (point fields here: {sorted(geometry.point_data)})",
                             path=path, fix=f"give the geometry a point field {name!r} with "
                                            f"{specs[name]['components']} component(s)")
        v = geometry.point_data[name].reshape(geometry.n_points, -1).astype(np.float64)
        if v.shape[1] != specs[name]["components"]:
            raise FieldError(f"{role} field {name!r} has {v.shape[1]} components, the model expects "
                             f"{specs[name]['components']}", path=path)
        if not np.isfinite(v).all():
            raise FieldError(f"field {name!r} has {int((~np.isfinite(v)).sum())} NaN/inf values", path=path,
                             fix="regenerate or repair this sample")
        return v

    def mask(name: str) -> np.ndarray:
        m = specs[name].get("mask")
        if m is None:
            return np.ones(geometry.n_points, dtype=bool)
        if m not in geometry.point_data:
            raise FieldError(f"mask field {m!r} of {name!r} missing", path=path,
                             fix=f"give the geometry a 0/1 point field {m!r} saying where {name!r} applies")
        return geometry.point_data[m].reshape(-1).astype(bool)

    x_parts = []
    for name in inputs:
        value, m = field(name, "input"), mask(name)
        x_parts.append(value * m[:, None])
        if specs[name].get("mask"):
            x_parts.append(m[:, None].astype(np.float64))
    normals = geometry.normals if geometry.normals is not None else np.zeros_like(geometry.points)
    f32 = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731
    data = Data(pos=f32(geometry.points),
                x=f32(np.concatenate(x_parts, axis=1)) if x_parts else torch.zeros(geometry.n_points, 0),
                weight=f32(quadrature_weights(geometry)), boundary=torch.from_numpy(geometry.boundary_mask.copy()),
                normal=f32(normals), globals=f32(geometry_descriptors(geometry))[None])
    if targets:
        data.y = f32(np.concatenate([field(t, "target") for t in targets], axis=1))
        data.y_mask = torch.as_tensor(np.concatenate(
            [np.repeat(mask(t)[:, None], specs[t]["components"], 1) for t in targets], axis=1))
    return data
