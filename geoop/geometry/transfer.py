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
