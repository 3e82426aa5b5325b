"""Exact signed distance to a geometry's boundary (negative inside), via libigl's AABB tree with
angle-weighted pseudonormals: about 0.5 s for 100k queries on a 10k-face surface on one core, where trimesh's
own `signed_distance` takes about 32 s."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from geoop.errors import GeometryError, NotWatertightError
from geoop.geometry.geometry import Geometry


def boundary_mesh(geometry: Geometry, within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Vertices `(N, d)` and outward-wound facets of the boundary: triangles `(F, 3)` in 3D, edges `(F, 2)`
    in 2D. Closed by construction for volume meshes; required to be closed for surfaces. `within (N,)` bool
    keeps a volume mesh's facets whose nodes all lie in it (a body inside the domain)."""
    if geometry.kind == "volume":
        facets = geometry.boundary_facets
        if within is not None:
            facets = facets[np.asarray(within, dtype=bool)[facets].all(axis=1)]
            if not len(facets):
                raise GeometryError("no boundary facet lies on the body mask", path=geometry.source,
                                    fix="check the body mask (a 0/1 point field on the body's nodes)")
        return geometry.points, facets
    if geometry.kind == "surface" and geometry.dim == 3:
        mesh = geometry.trimesh
        return np.asarray(mesh.vertices), np.asarray(mesh.faces, dtype=np.int64)
    raise GeometryError(
        f"a signed distance needs a boundary: this {geometry.dim}D geometry is a bare {geometry.kind}",
        path=geometry.source, fix="load a surface mesh (STL/OBJ/PLY with faces) or a volume mesh instead")


def signed_distance(geometry: Geometry, queries: np.ndarray, signed: bool = True,
                    return_closest: bool = False, within: np.ndarray | None = None
                    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Distance from `queries (M, d)` to the boundary of `geometry`: `(M,)`, negative inside when `signed`.
    `within`: a volume mesh's body mask: the distance to the body alone (negative in the fluid), not to the
    domain's other edges (a far field, or the cut of a box around the body).

    With `return_closest`, also the closest boundary points `(M, d)`, so that
    `(closest - queries) / |sdf|` is the direction to the boundary.

    Raises:
        NotWatertightError: `signed=True` on a surface with holes or inconsistent winding.
    """
    queries = np.ascontiguousarray(queries, dtype=np.float64)
    if queries.ndim != 2 or queries.shape[1] != geometry.dim:
        raise GeometryError(f"queries must have shape (M, {geometry.dim}), got {queries.shape}",
                            path=geometry.source)
    if signed and not geometry.is_watertight:
        raise NotWatertightError(
            "the surface is not closed (or its winding is inconsistent), so inside/outside is undefined",
            path=geometry.source,
            fix="repair it (e.g. trimesh.repair.fill_holes) or ask for signed=False (unsigned distance)")
    import igl

    vertices, facets = boundary_mesh(geometry, within)
    if len(queries) == 0:
        empty = np.zeros(0)
        return (empty, np.zeros((0, geometry.dim))) if return_closest else empty
    kind = igl.SIGNED_DISTANCE_TYPE_PSEUDONORMAL if signed else igl.SIGNED_DISTANCE_TYPE_UNSIGNED
    dist, _, closest, _ = igl.signed_distance(queries, np.ascontiguousarray(vertices, dtype=np.float64),
                                              np.ascontiguousarray(facets, dtype=np.int64), kind)
    if not signed:
        dist = np.abs(dist)
    return (dist, closest) if return_closest else dist


def contains(geometry: Geometry, queries: np.ndarray) -> np.ndarray:
    """`(M,)` bool: inside (or on) the closed boundary of `geometry`."""
    return signed_distance(geometry, queries) <= 0


def grid_inside(geometry: Geometry, axes: list[np.ndarray], tolerance: float = 0.0, stride: int = 4) -> np.ndarray:
    """`(prod(len(a) for a in axes),)` bool, in `np.meshgrid(*axes, indexing="ij")` order: the nodes of the
    structured grid with coordinates `axes` (one increasing array per axis) inside or within `tolerance` of the
    closed boundary of `geometry`, i.e. `signed_distance <= tolerance` at each node, without a distance query
    at every node.

    The signed distance s is 1-Lipschitz: a node p at distance t from a node c of the coarse grid (every
    `stride`-th node per axis, and the last) with `|s(c)| - t > tolerance` has the sign of s(c) (the ball of
    radius |s(c)| around c holds no boundary). Only the nodes no coarse node decides, those near the boundary,
    are queried: on a 100^3 grid around a body about 10% of the nodes, with the same mask."""
    shape = tuple(len(a) for a in axes)
    coarse = [np.unique(np.r_[np.arange(0, n, stride), n - 1]) for n in shape]
    corner = np.stack(np.meshgrid(*[a[c] for a, c in zip(axes, coarse, strict=True)], indexing="ij"), axis=-1)
    s_coarse = signed_distance(geometry, corner.reshape(-1, len(axes))).reshape(corner.shape[:-1])
    nearest, gaps = [], []  # per axis: each node's nearest coarse node (its position in `coarse`) and the gap^2
    for a, c in zip(axes, coarse, strict=True):
        k = np.clip(np.searchsorted(a[c], a), 1, len(c) - 1)
        k -= (a - a[c[k - 1]]) < (a[c[k]] - a)
        nearest.append(k)
        gaps.append((a - a[c[k]]) ** 2)
    reach = np.sqrt(sum(g.reshape([-1 if i == j else 1 for j in range(len(axes))]) for i, g in enumerate(gaps)))
    s = s_coarse[np.ix_(*nearest)]
    span = max(float(a[-1] - a[0]) for a in axes)
    decided = np.abs(s) - reach > tolerance + 1e-9 * span  # beyond the distance's rounding too
    inside = (s <= 0).ravel()
    open_ = np.flatnonzero(~decided.ravel())
    if len(open_):
        nodes = np.stack([a[i] for a, i in zip(axes, np.unravel_index(open_, shape), strict=True)], axis=1)
        inside[open_] = signed_distance(geometry, nodes) <= tolerance
    return inside


def distance_kind(geometry: Geometry) -> str:
    """Which distance `distance_function` gives for `geometry`: "signed" (a closed boundary: volume meshes,
    watertight surfaces), "unsigned" (an open surface) or "points" (to the nearest point of a bare cloud)."""
    if geometry.kind == "volume" or (geometry.kind == "surface" and geometry.dim == 3):
        return "signed" if geometry.kind == "volume" or geometry.is_watertight else "unsigned"
    return "points"


def distance_function(geometry: Geometry, body: str | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """The best distance the geometry defines (see `distance_kind`), as a function of `(M, d)` queries ->
    `(M,)`; with `body` (the name of a 0/1 point field of a volume mesh), the signed distance to that body
    alone. Models feed it as their geometry channel."""
    kind = distance_kind(geometry)
    if body is not None and kind == "signed" and geometry.kind == "volume":
        within = geometry.point_mask(body)
        return lambda q: signed_distance(geometry, q, within=within)
    if kind != "points":
        return lambda q: signed_distance(geometry, q, signed=kind == "signed")
    from scipy.spatial import cKDTree

    tree = cKDTree(geometry.points)
    return lambda q: tree.query(np.asarray(q, dtype=np.float64))[0]

