"""Moving fields between cells and points."""
from __future__ import annotations

import numpy as np

from geoop.errors import FieldError
from geoop.geometry import cells as C
from geoop.geometry.geometry import Geometry


def cell_to_point(geometry: Geometry, name: str) -> np.ndarray:
    """Cell field `name` averaged onto the points, weighted by the measure of the top-dimensional cells
    around each point: `(N, ...)`. Points in no top-dimensional cell get the plain mean of their cells."""
    per_type = geometry.cell_data.get(name)
    if per_type is None:
        raise FieldError(f"no cell field {name!r} (cell fields: {sorted(geometry.cell_data)})",
                         path=geometry.source)
    dim = geometry.cell_dim
    sample = next(iter(per_type.values()))
    acc = np.zeros((geometry.n_points, *sample.shape[1:]))
    weight = np.zeros(geometry.n_points)
    simplex, owner = C.simplices(geometry.cells, dim)
    blocks = [t for t in geometry.cells if C.CELL_DIM.get(t) == dim and t != "polygon"]
    missing = [t for t in blocks if t not in per_type]
    if missing:
        raise FieldError(f"cell field {name!r} is missing on {missing} cells", path=geometry.source)
    values = np.concatenate([per_type[t] for t in blocks]).astype(np.float64)[owner]
    measure = C.simplex_measures(geometry.points, simplex)
    for k in range(simplex.shape[1]):
        np.add.at(acc, simplex[:, k], values * measure.reshape(-1, *[1] * (values.ndim - 1)))
        np.add.at(weight, simplex[:, k], measure)
    empty = weight == 0
    if empty.any():
        raise FieldError(f"{int(empty.sum())} points touch no {dim}D cell, so cell field {name!r} has no value "
                         "there", path=geometry.source, fix="remove unused points or store the field as point data")
    return acc / weight.reshape(-1, *[1] * (acc.ndim - 1))


def _top_blocks(geometry: Geometry) -> list[str]:
    """Cell types of the top dimension, in the order `cells_as_points` numbers their cells."""
    return [t for t, c in geometry.cells.items() if C.CELL_DIM.get(t) == geometry.cell_dim and len(c)]


def cells_as_points(geometry: Geometry) -> Geometry:
    """The top-dimensional cells as a point cloud: one point per cell at its centroid `(C, d)`, the cell fields
    as its point fields, and for the faces of a 3D surface or the edges of a 2D curve their unit normals (in
    the cells' winding: right-hand for faces, (dy, -dx) for edges), so that fields solvers write per face
    (surface pressure) train as they are."""
    dim = geometry.cell_dim
    blocks = _top_blocks(geometry)
    if dim < 1 or not blocks:
        raise FieldError("the geometry has no cells to take as points", path=geometry.source,
                         fix="use the points (leave --at out)")
    if "polygon" in blocks:
        raise FieldError("polygon cells have no fixed corner count", path=geometry.source,
                         fix="triangulate the surface first (e.g. ParaView's Triangulate filter)")
    corners = [geometry.cells[t][:, :C.N_CORNERS[C.LINEAR_TYPE[t]]] for t in blocks]
    centres = np.concatenate([geometry.points[c].mean(axis=1) for c in corners])
    fields = {}
    for name, per_type in geometry.cell_data.items():
        if all(t in per_type for t in blocks):
            fields[name] = np.concatenate([np.asarray(per_type[t]) for t in blocks])
    normals = None
    if dim == 2 and geometry.dim == 3:
        p = geometry.points
        parts = [np.cross(p[c[:, 2]] - p[c[:, 0]], p[c[:, 3]] - p[c[:, 1]]) if c.shape[1] == 4  # quad diagonals
                 else np.cross(p[c[:, 1]] - p[c[:, 0]], p[c[:, 2]] - p[c[:, 0]]) for c in corners]
        normals = np.concatenate(parts)
    elif dim == 1 and geometry.dim == 2:
        tangent = np.concatenate([geometry.points[c[:, 1]] - geometry.points[c[:, 0]] for c in corners])
        normals = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
    if normals is not None:
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-300)
    return Geometry(centres, point_data=fields, normals=normals, source=geometry.source,
                    global_data=geometry.global_data)


def cell_fields(geometry: Geometry, fields: dict[str, np.ndarray]) -> Geometry:
    """The inverse of `cells_as_points`: `geometry`'s top-dimensional cells with `fields` (one row per cell, in
    `cells_as_points` order) as their cell data, and its point fields."""
    blocks = _top_blocks(geometry)
    sizes = [len(geometry.cells[t]) for t in blocks]
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    data = {}
    for name, value in fields.items():
        if len(value) != bounds[-1]:
            raise FieldError(f"field {name!r} has {len(value)} rows for {bounds[-1]} cells", path=geometry.source)
        data[name] = {t: np.asarray(value[bounds[i]:bounds[i + 1]]) for i, t in enumerate(blocks)}
    return Geometry(geometry.points, {t: geometry.cells[t] for t in blocks}, geometry.point_data, data,
                    source=geometry.source)
