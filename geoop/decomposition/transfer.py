"""Per-leaf uniform grids of a K-D tree decomposition and the linear maps between points and those grids,
precomputed once per geometry as sparse matrices (an epoch only multiplies).

Each leaf's grid covers its tree cell grown by an overlap (clipped to the tree's root box), with its own node
count sized to the points the cell holds. Points -> grids interpolates in the mesh's own cells, so a node in a
hole or a void takes no value from across it; grids -> queries blends the overlapping leaves with a partition
of unity, so the read-out is continuous across the cuts and reproduces linear functions exactly."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, cKDTree

from geoop.decomposition.kdtree import KDTreeDecomposition

#: fewest grid nodes along any leaf axis
MIN_NODES = 4


@dataclass
class LeafGrids:
    """L uniform grids, leaf k of `shapes[k]` nodes per physical axis over its box `[lower[k], upper[k]]`
    (endpoint-inclusive: node i of an axis with S nodes sits at i / (S - 1) of the box); `core_lower`,
    `core_upper` `(L, d)` the tree cells the boxes grow from (the boxes overlap, the cores tile the root box)."""

    shapes: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    core_lower: np.ndarray
    core_upper: np.ndarray

    @property
    def n_leaves(self) -> int:
        return len(self.lower)

    @property
    def sizes(self) -> np.ndarray:
        """`(L,)` nodes of each leaf."""
        return np.prod(self.shapes, axis=1)

    @property
    def offsets(self) -> np.ndarray:
        """`(L + 1,)` where each leaf's nodes start in `nodes()`."""
        return np.concatenate([[0], np.cumsum(self.sizes)])

    @property
    def n_nodes(self) -> int:
        return int(self.sizes.sum())

    def leaf_shape(self, k: int) -> tuple[int, ...]:
        return tuple(int(s) for s in self.shapes[k])

    def nodes(self) -> np.ndarray:
        """`(G, d)` physical coordinates, leaf after leaf, each row-major (last axis fastest)."""
        out = []
        for k in range(self.n_leaves):
            axes = [np.linspace(lo, hi, s) for lo, hi, s in zip(self.lower[k], self.upper[k], self.shapes[k],
                                                                 strict=True)]
            out.append(np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes)))
        return np.concatenate(out)


def leaf_grids(tree: KDTreeDecomposition, oversample: float = 1.5, overlap: float = 0.0) -> LeafGrids:
    """Grids of `oversample x points` nodes in all (points of one sample when the tree was fitted on several):
    each leaf's box is its tree cell grown by `overlap` times the cell's extent on every side that is not a face
    of the root box, and its node spacing is the one that puts the same number of nodes per point in every
    cell (at least `MIN_NODES` per axis), so dense leaves get fine grids and sparse ones coarse grids."""
    core_lo, core_hi = tree.cell_boxes()
    root_lo, root_hi = core_lo.min(0), core_hi.max(0)
    extent = np.maximum(core_hi - core_lo, 1e-12)
    lower = np.maximum(core_lo - overlap * extent, root_lo)
    upper = np.minimum(core_hi + overlap * extent, root_hi)
    d = extent.shape[1]
    per_sample = np.maximum(tree.leaf_count_ / float(tree.n_samples_), 1.0)
    spacing = (np.prod(extent, axis=1) / per_sample) ** (1 / d)  # one node per point in each core
    box = np.maximum(upper - lower, 1e-12)

    def shapes_at(scale: float) -> np.ndarray:
        return np.maximum(MIN_NODES, np.round(box / (spacing[:, None] * scale)).astype(int) + 1)

    target = oversample * per_sample.sum()
    lo, hi = 1e-3, 1e3  # spacing multipliers: more nodes at lo
    for _ in range(60):  # the node count falls with the multiplier: bisect (in log) for the target
        mid = np.sqrt(lo * hi)
        lo, hi = (mid, hi) if np.prod(shapes_at(mid), axis=1).sum() > target else (lo, mid)
    scale = min((lo, hi), key=lambda s: abs(np.prod(shapes_at(s), axis=1).sum() - target))
    return LeafGrids(shapes_at(scale), lower, upper, core_lo, core_hi)


def locate_in_cells(points: np.ndarray, cells: np.ndarray, nodes: np.ndarray, chunk: int = 20000,
                    nearest: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """The mesh cell containing each of `nodes (G, d)`: `cell (G,)` (-1 where none does) and barycentric
    coordinates `(G, d + 1)`, for simplices `cells (K, d + 1)` of `points (N, d)`; degenerate cells are skipped.

    First the cells of each node's `nearest` centroids are tried at once (barycentric coordinates
    lambda = T^-1 (x - v_d) from each cell's inverted frame T = [v_0 - v_d, ..., v_{d-1} - v_d]): that finds
    almost every node inside the mesh. The rest (nodes outside it, or in a long thin cell whose centroid is
    farther than others') are searched among the centroids within the cells' circumscribing radius, in bins
    of similar size, so a graded mesh's large cells do not widen the search among its small ones."""
    d = points.shape[1]
    verts = points[cells]  # (K, d+1, d)
    frame = np.swapaxes(verts[:, :d] - verts[:, d:], 1, 2)  # (K, d, d): columns v_i - v_d
    good = np.abs(np.linalg.det(frame)) > 1e-14 * np.prod(np.ptp(points, axis=0))
    inverse = np.zeros_like(frame)
    inverse[good] = np.linalg.inv(frame[good])
    centroid = verts.mean(1)
    found = np.full(len(nodes), -1)
    bary = np.zeros((len(nodes), d + 1))
    usable = np.flatnonzero(good)
    if not len(usable):
        return found, bary

    def first_inside(rows: np.ndarray, candidates: np.ndarray) -> None:
        """Record, for each node of `rows (R,)`, the first of its `candidates (R, k)` cells (non-degenerate
        ones) that holds it."""
        lam = np.einsum("rkij,rkj->rki", inverse[candidates], nodes[rows, None, :] - verts[candidates, d])
        lam = np.concatenate([lam, 1 - lam.sum(2, keepdims=True)], axis=2)
        inside = (lam >= -1e-9).all(2)
        hit = inside.any(1)
        pick = inside[hit].argmax(1)
        found[rows[hit]] = candidates[hit, pick]
        bary[rows[hit]] = lam[hit, pick]

    near = cKDTree(centroid[usable])
    k = min(nearest, len(usable))
    for start in range(0, len(nodes), chunk):
        rows = np.arange(start, min(start + chunk, len(nodes)))
        candidates = usable[near.query(nodes[rows], k=k)[1].reshape(len(rows), k)]
        first_inside(rows, candidates)
    if (found >= 0).all():
        return found, bary
    radius = np.linalg.norm(verts - centroid[:, None], axis=2).max(1)
    level = np.floor(np.log2(radius / radius[good].min())).astype(int)
    for lv in np.unique(level[good]):
        members = np.flatnonzero(good & (level == lv))
        search = cKDTree(centroid[members])
        reach = radius[members].max() * (1 + 1e-9)
        for start in range(0, len(nodes), chunk):
            todo = start + np.flatnonzero(found[start:start + chunk] < 0)
            if not len(todo):
                continue
            balls = search.query_ball_point(nodes[todo], reach)
            sizes = np.fromiter((len(b) for b in balls), dtype=np.int64, count=len(balls))
            if not sizes.any():
                continue
            rows = np.repeat(todo, sizes)
            cols = members[np.concatenate([np.asarray(b, dtype=np.int64) for b in balls if b])]
            lam = np.einsum("rij,rj->ri", inverse[cols], nodes[rows] - verts[cols, d])
            lam = np.concatenate([lam, 1 - lam.sum(1, keepdims=True)], axis=1)
            inside = (lam >= -1e-9).all(1)
            rows, cols, lam = rows[inside], cols[inside], lam[inside]
            first = np.unique(rows, return_index=True)[1]
            found[rows[first]], bary[rows[first]] = cols[first], lam[first]
    return found, bary


def point_to_grid_matrix(points: np.ndarray, nodes: np.ndarray, cells: np.ndarray | None = None,
                         inside: np.ndarray | None = None) -> tuple[sp.csr_matrix, np.ndarray]:
    """`(G, N)` piecewise-linear interpolation from `points (N, d)` to `nodes (G, d)`, and `(G,)` whether each
    node lies in the domain.

    With the mesh's simplices `cells (K, d + 1)` a node is interpolated in the cell that contains it, and the
    domain is the union of the cells. Without them (a point cloud) the points' Delaunay triangulation stands in,
    and `inside (G,)` (e.g. from a signed distance) says where the domain is (default: the convex hull). A node
    outside the domain takes the value of its nearest point, never a blend across a hole or a void."""
    d = points.shape[1]
    if cells is not None:
        simplex, bary = locate_in_cells(points, cells, nodes)
        in_cell = simplex >= 0
        vertex_of = cells[simplex[in_cell]]
    else:
        tri = Delaunay(points)
        simplex = tri.find_simplex(nodes)
        if inside is not None:
            simplex[~np.asarray(inside, dtype=bool)] = -1
        in_cell = simplex >= 0
        transform = tri.transform[simplex[in_cell]]  # (g, d+1, d)
        partial = np.einsum("gij,gj->gi", transform[:, :d], nodes[in_cell] - transform[:, d])
        bary = np.zeros((len(nodes), d + 1))
        bary[in_cell] = np.concatenate([partial, 1 - partial.sum(1, keepdims=True)], axis=1)
        vertex_of = tri.simplices[simplex[in_cell]]
    rows_in = np.repeat(np.flatnonzero(in_cell), d + 1)
    outside = np.flatnonzero(~in_cell)
    _, nearest = cKDTree(points).query(nodes[outside])
    rows = np.concatenate([rows_in, outside])
    cols = np.concatenate([vertex_of.ravel(), nearest])
    vals = np.concatenate([bary[in_cell].ravel(), np.ones(len(outside))])
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(nodes), len(points)))
    return matrix, in_cell


def _smoothstep(t: np.ndarray) -> np.ndarray:
    t = np.clip(t, 0.0, 1.0)
    return t * t * (3 - 2 * t)


def blend_weights(grids: LeafGrids, queries: np.ndarray) -> np.ndarray:
    """`(M, L)` partition of unity over the leaves at `queries (M, d)`: leaf k's weight is its node density
    (nodes per unit volume) on its core, falls smoothly to 0 across its overlap, and is normalised to sum 1, so
    where a fine leaf reaches into a coarse one the fine grid is read. Queries outside the root box are first
    clamped onto it (the leaves at its faces extrapolate there)."""
    root_lo, root_hi = grids.core_lower.min(0), grids.core_upper.max(0)
    q = np.clip(queries, root_lo, root_hi)[:, None]  # (M, 1, d)
    grow_lo, grow_hi = grids.core_lower - grids.lower, grids.upper - grids.core_upper  # (L, d) overlaps
    ramp_lo = np.where(grow_lo > 0, _smoothstep((q - grids.lower) / np.maximum(grow_lo, 1e-300)),
                       (q >= grids.lower).astype(float))
    ramp_hi = np.where(grow_hi > 0, _smoothstep((grids.upper - q) / np.maximum(grow_hi, 1e-300)),
                       (q <= grids.upper).astype(float))
    density = np.prod((grids.shapes - 1) / np.maximum(grids.upper - grids.lower, 1e-300), axis=1)
    w = np.prod(ramp_lo * ramp_hi, axis=2) * (density / density.max())
    return w / w.sum(1, keepdims=True)


def grid_to_point_matrix(grids: LeafGrids, queries: np.ndarray) -> sp.csr_matrix:
    """`(M, G)` read-out of the leaf grids at `queries (M, d)`: each leaf whose box holds the query interpolates
    it multilinearly, blended by `blend_weights`. A query outside the root box is extrapolated linearly from the
    nearest grid cell (exact for linear fields), at most half a box beyond, and clamped further out."""
    weights = blend_weights(grids, queries)
    rows, cols, vals = [], [], []
    for k in range(grids.n_leaves):
        at = np.flatnonzero(weights[:, k] > 0)
        span = np.maximum(grids.upper[k] - grids.lower[k], 1e-300)
        shape = grids.shapes[k]
        position = np.clip((queries[at] - grids.lower[k]) / span, -0.5, 1.5) * (shape - 1)
        base = np.clip(np.floor(position).astype(int), 0, shape - 2)
        frac = position - base  # outside [0, 1] beyond the root box: linear extrapolation
        for corner in itertools.product((0, 1), repeat=len(shape)):
            corner = np.array(corner)
            rows.append(at)
            cols.append(grids.offsets[k] + np.ravel_multi_index((base + corner).T, tuple(shape)))
            vals.append(weights[at, k] * np.prod(np.where(corner, frac, 1 - frac), axis=1))
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(queries), grids.n_nodes))

