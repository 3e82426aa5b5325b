"""Measure-weighted random sampling on a geometry's boundary and in its interior; point fields follow by
barycentric interpolation (integer fields take the value of the nearest corner)."""
from __future__ import annotations

import numpy as np

from geoop.errors import GeometryError
from geoop.geometry.cells import simplex_measures
from geoop.geometry.geometry import Geometry
from geoop.geometry.sdf import boundary_mesh, grid_inside, signed_distance


def _facet_normals(points: np.ndarray, facets: np.ndarray) -> np.ndarray:
    p = points[facets]
    if facets.shape[1] == 2:
        t = p[:, 1] - p[:, 0]
        n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    else:
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-300)


def _sample_simplices(geometry: Geometry, simplex: np.ndarray, n: int, rng: np.random.Generator
                      ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """n points uniform over the union of `simplex (S, k)`: returns points, chosen simplex ids, fields."""
    measure = simplex_measures(geometry.points, simplex)
    if len(simplex) == 0 or measure.sum() <= 0:
        raise GeometryError("nothing to sample: the cells have zero total measure", path=geometry.source)
    chosen = rng.choice(len(simplex), size=n, p=measure / measure.sum())
    bary = rng.exponential(size=(n, simplex.shape[1]))
    bary /= bary.sum(axis=1, keepdims=True)
    nodes = simplex[chosen]  # (n, k)
    points = np.einsum("nk,nkd->nd", bary, geometry.points[nodes])
    fields = {}
    for name, value in geometry.point_data.items():
        if np.issubdtype(value.dtype, np.floating):
            corner = value[nodes]  # (n, k, ...)
            fields[name] = np.einsum("nk,nk...->n...", bary, corner)
        else:
            fields[name] = value[nodes[np.arange(n), bary.argmax(axis=1)]]
    return points, chosen, fields


def sample_surface(geometry: Geometry, n: int, seed: int | None = None) -> Geometry:
    """`n` points uniform by area (3D) or length (2D) on the boundary, as a point-cloud `Geometry` with
    outward facet normals and interpolated point fields."""
    rng = np.random.default_rng(seed)
    _, facets = boundary_mesh(geometry)
    if geometry.kind == "surface":  # boundary_mesh rewinds a closed surface outward; keep node numbering
        facets = np.asarray(geometry.trimesh.faces, dtype=np.int64)
    points, chosen, fields = _sample_simplices(geometry, facets, n, rng)
    normals = _facet_normals(geometry.points, facets)[chosen]
    return Geometry(points, point_data=fields, normals=normals, source=geometry.source)


def sample_volume(geometry: Geometry, n: int, seed: int | None = None, batch: int = 65536) -> Geometry:
    """`n` points uniform by volume (area in 2D) inside the geometry, as a point-cloud `Geometry`.

    Volume meshes are sampled cell by cell (point fields interpolated); closed surfaces by rejection in their
    bounding box (no fields)."""
    rng = np.random.default_rng(seed)
    if geometry.kind == "volume":
        points, _, fields = _sample_simplices(geometry, geometry.simplices, n, rng)
        return Geometry(points, point_data=fields, source=geometry.source)
    lo, hi = geometry.bounds
    kept: list[np.ndarray] = []
    total, tries = 0, 0
    while total < n:
        candidates = rng.uniform(lo, hi, size=(batch, geometry.dim))
        inside = candidates[signed_distance(geometry, candidates) < 0]
        kept.append(inside)
        total += len(inside)
        tries += 1
        if tries >= 100 and total == 0:
            raise GeometryError("no sample fell inside the surface in 100 batches", path=geometry.source,
                                fix="check that the surface encloses a volume (is it inverted?)")
    return Geometry(np.concatenate(kept)[:n], source=geometry.source)


def box_grid(geometry: Geometry, shape: tuple[int, ...]) -> Geometry:
    """A structured grid of `shape` nodes (one count per axis) over the bounding box of `geometry`, with
    quad (2D) or hexahedral (3D) cells, so that ParaView slices and contours it. Where the geometry encloses
    a region (a volume mesh or a closed surface), the point field `inside` is 1 inside and 0 outside (mask the
    predictions with it: outside the domain they are extrapolation)."""
    if len(shape) != geometry.dim or min(shape) < 2:
        raise GeometryError(f"a query grid of {geometry.dim}D geometry needs {geometry.dim} node counts >= 2, "
                            f"got {'x'.join(map(str, shape))}", path=geometry.source,
                            fix="e.g. --query-grid " + "x".join(["64"] * geometry.dim))
    lo, hi = geometry.bounds
    axes = [np.linspace(lo[a], hi[a], n) for a, n in enumerate(shape)]
    points = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, geometry.dim)
    index = np.arange(len(points)).reshape(shape)
    if geometry.dim == 2:
        c = index[:-1, :-1].ravel()
        dx, dy = shape[1], 1
        cells = {"quad": np.stack([c, c + dx, c + dx + dy, c + dy], axis=1)}
    else:
        c = index[:-1, :-1, :-1].ravel()
        dx, dy, dz = shape[1] * shape[2], shape[2], 1
        cells = {"hexahedron": np.stack([c, c + dx, c + dx + dy, c + dy, c + dz, c + dx + dz, c + dx + dy + dz,
                                         c + dy + dz], axis=1)}
    fields = {}
    if geometry.kind == "volume" or geometry.is_watertight:  # nodes on the boundary (the box's faces) are in
        tolerance = 1e-9 * float(np.max(hi - lo))
        fields["inside"] = grid_inside(geometry, axes, tolerance).astype(np.float64)
    return Geometry(points, cells, fields, source=geometry.source)
