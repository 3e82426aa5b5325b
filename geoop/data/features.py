"""What a model sees of one geometry: its fields as PyG `Data` tensors. The dataset loader and `predict`
both build their inputs here, so a prediction sees exactly what training saw."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from geoop.data.pyg import Data

from geoop.errors import FieldError
from geoop.geometry.geometry import Geometry
from geoop.geometry.quadrature import facet_weights, quadrature_weights
from geoop.graph.interpolation import extension_matrix


def geometry_descriptors(geometry: Geometry) -> np.ndarray:
    """`(2 + 3d,)` global descriptors of a geometry: log measure, boundary fraction, bounding-box corners,
    and the measure-weighted centroid."""
    w = quadrature_weights(geometry)
    measure = float(w.sum())
    centroid = (w[:, None] * geometry.points).sum(0) / max(measure, 1e-300)
    lo, hi = geometry.bounds
    return np.concatenate([[np.log(max(measure, 1e-300)), geometry.boundary_mask.mean()], lo, hi, centroid])


#: how far (in multiples of a point's distance to the boundary data) the data are carried in (`InputLayout`)
EXTENSION_REACH = 4.0


@dataclass(frozen=True)
class InputLayout:
    """Where each input field sits in `sample_features`'s x. An unmasked field is its components; a masked
    field (boundary data, e.g. a Dirichlet value on part of the boundary) is its values (zero off the mask),
    its 0/1 mask channel, and, with `extension` (a reach, 0: off), its values carried to every point from the
    nodes of its mask within `extension` times the point's distance to them (Shepard's weights: boundary
    measure over distance^d; see `extension_matrix`), a smooth stand-in for the boundary data inside the
    domain that any model can read locally."""

    inputs: tuple[str, ...]
    specs: Mapping[str, dict]
    extension: float = EXTENSION_REACH

    def _fields(self) -> list[tuple[str, int, bool]]:
        return [(name, int(self.specs[name]["components"]), bool(self.specs[name].get("mask")))
                for name in self.inputs]

    @property
    def channels(self) -> int:
        return sum(n + (1 + (n if self.extension else 0) if masked else 0) for _, n, masked in self._fields())

    def roles(self) -> tuple[list[int], list[int], list[int]]:
        """Channels of boundary data (values of masked fields and their extensions), of boundary-condition
        types (the masks), and of the extensions alone (derived from the others)."""
        values, types, derived, c = [], [], [], 0
        for _, n, masked in self._fields():
            if masked:
                values += list(range(c, c + n))
                types.append(c + n)
                c += n + 1
                if self.extension:
                    values += list(range(c, c + n))
                    derived += list(range(c, c + n))
                    c += n
            else:
                c += n
        return values, types, derived

    def channels_of(self, name: str, extended: bool = False) -> list[int]:
        """x channels of input `name`: its values, or (`extended`, for a masked input) its extension inward."""
        c = 0
        for field, n, masked in self._fields():
            if field == name:
                if not extended:
                    return list(range(c, c + n))
                if not (masked and self.extension):
                    raise ValueError(f"input {name!r} has no extension (it is not masked, or extension is 0)")
                return list(range(c + n + 1, c + 2 * n + 1))
            c += n + (1 + (n if self.extension else 0) if masked else 0)
        raise ValueError(f"no input field {name!r}")

    def vector_starts(self, dim: int) -> list[int]:
        """First channels of spatial vectors: unmasked inputs of `dim` components, such as a free stream."""
        out, c = [], 0
        for _, n, masked in self._fields():
            if n == dim and not masked:
                out.append(c)
            c += n + (1 + (n if self.extension else 0) if masked else 0)
        return out


def sample_features(geometry: Geometry, inputs: Sequence[str], specs: Mapping[str, dict],
                    targets: Sequence[str] = (), path: str | Path | None = None,
                    extension: float = EXTENSION_REACH, body: str | None = None) -> Data:
    """`Data` with pos `(N, d)`, x `(N, C_in)` laid out as `InputLayout` says (a masked input is zero off its
    mask, followed by its 0/1 mask channel and, with `extension`, its extension inward), weight `(N,)`
    quadrature weights, boundary_weight `(N,)` boundary (arc-length/area) weights, boundary `(N,)`, normal
    `(N, d)` (zero where undefined), globals `(1, 2 + 3d)`; with `targets`, y `(N, C_out)`, y_mask
    `(N, C_out)` and target_weight `(N, C_out)`: the weights that integrate each target where it is defined (a
    target that lives on boundary nodes of a volume mesh, such as Cp on a body, is integrated over that surface
    with area weights, not with the volume weights of its nodes). Floats are float32.

    `specs[name]` holds "components" and "mask" (the name of a 0/1 point field, or None) of every field.
    `body`: the name of a 0/1 point field marking a body inside the domain (an airfoil in a box around it):
    then only the body's nodes are boundary (flags, normals, boundary weights), not the domain's cut edges."""
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
        return np.ones(geometry.n_points, dtype=bool) if m is None else geometry.point_mask(m, of=name)

    x_parts = []
    on_body = None if body is None else geometry.point_mask(body)
    boundary_weight = facet_weights(geometry, within=on_body)
    for name in inputs:
        value, m = field(name, "input"), mask(name)
        x_parts.append(value * m[:, None])
        if specs[name].get("mask"):
            x_parts.append(m[:, None].astype(np.float64))
            if extension:
                carry = extension_matrix(torch.from_numpy(np.array(geometry.points)), torch.from_numpy(m),
                                         torch.from_numpy(boundary_weight), reach=extension).double()
                x_parts.append(torch.sparse.mm(carry, torch.from_numpy(value * m[:, None])).numpy())
    normals = geometry.normals if geometry.normals is not None else np.zeros_like(geometry.points)
    boundary = geometry.boundary_mask.copy()
    if on_body is not None:
        boundary &= on_body
        normals = np.where(boundary[:, None], normals, 0.0)
    f32 = lambda a: torch.from_numpy(np.array(a, dtype=np.float32))  # noqa: E731
    weight = quadrature_weights(geometry)
    data = Data(pos=f32(geometry.points),
                x=f32(np.concatenate(x_parts, axis=1)) if x_parts else torch.zeros(geometry.n_points, 0),
                weight=f32(weight), boundary_weight=f32(boundary_weight),
                boundary=torch.from_numpy(boundary),
                normal=f32(normals), globals=f32(geometry_descriptors(geometry))[None])
    if targets:
        masks = [mask(t) for t in targets]
        data.y = f32(np.concatenate([field(t, "target") for t in targets], axis=1))
        data.y_mask = torch.as_tensor(np.concatenate(
            [np.repeat(m[:, None], specs[t]["components"], 1) for t, m in zip(targets, masks, strict=True)], 1))
        data.target_weight = f32(np.concatenate(
            [np.repeat(target_weights(geometry, m, weight)[:, None], specs[t]["components"], 1)
             for t, m in zip(targets, masks, strict=True)], axis=1))
    return data


def target_weights(geometry: Geometry, mask: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """`(N,)` weights that integrate a target over where it is defined (`mask`): the surface-area weights of
    the boundary facets inside the mask when the mask is part of a volume mesh's boundary (a field on a body
    surface), else the quadrature weights on the mask."""
    if geometry.kind == "volume" and mask.any() and not mask.all() and (mask <= geometry.boundary_mask).all():
        surface = facet_weights(geometry, within=mask)
        if surface.sum() > 0:
            return surface
    return weight * mask
