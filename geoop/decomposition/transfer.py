"""Per-leaf uniform grids of a K-D tree decomposition and the linear maps between points and those grids,
precomputed once per geometry as sparse matrices (an epoch only multiplies)."""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.spatial import Delaunay, cKDTree

from geoop.decomposition.kdtree import KDTreeDecomposition


@dataclass
class LeafGrids:
    """L leaf grids of one common shape `S = (S_1 >= S_2 [>= S_3])`. Leaf k's aligned axis a is physical axis
    `axes[k, a]` (its longest extent first), so that all leaves stack; node coordinates are endpoint-inclusive
    linspaces over the leaf's box `[lower[k], upper[k]]`."""

    shape: tuple[int, ...]
    lower: np.ndarray
    upper: np.ndarray
    axes: np.ndarray

    @property
    def n_leaves(self) -> int:
        return len(self.lower)

    @property
    def nodes_per_leaf(self) -> int:
        return int(np.prod(self.shape))

    def nodes(self) -> np.ndarray:
        """`(L * prod(S), d)` physical coordinates, leaf after leaf, each row-major over the aligned axes."""
        unit = np.stack(np.meshgrid(*[np.linspace(0, 1, s) for s in self.shape], indexing="ij"), -1)
        unit = unit.reshape(-1, len(self.shape))  # aligned unit coordinates
        out = []
        for k in range(self.n_leaves):
            physical = np.empty_like(unit)
            physical[:, self.axes[k]] = unit
            out.append(self.lower[k] + physical * (self.upper[k] - self.lower[k]))
        return np.concatenate(out)


def leaf_grids(tree: KDTreeDecomposition, oversample: float = 1.5) -> LeafGrids:
    """Grids with about `oversample x points` nodes per leaf (points of one sample when the tree was fitted on
    several), per-axis counts proportional to the leaf's box extents (at least 2), aligned longest axis first;
    the common shape is the elementwise maximum."""
    extents = np.maximum(tree.leaf_upper_ - tree.leaf_lower_, 1e-12)
    d = extents.shape[1]
    axes = np.argsort(-extents, axis=1, kind="stable")
    shapes = []
    for k in range(len(extents)):
        e = extents[k, axes[k]]
        per_sample = tree.leaf_count_[k] / float(tree.n_samples_)
        n1 = (oversample * per_sample * np.prod(e[0] / e[1:])) ** (1 / d)
        shapes.append(np.maximum(2, np.round(n1 * e / e[0])).astype(int))
    return LeafGrids(tuple(int(s) for s in np.max(shapes, axis=0)), tree.leaf_lower_.copy(),
                     tree.leaf_upper_.copy(), axes)


def point_to_grid_matrix(points: np.ndarray, nodes: np.ndarray) -> sp.csr_matrix:
    """`(G, N)` piecewise-linear interpolation from scattered `points (N, d)` (their Delaunay triangulation)
    to `nodes (G, d)`; nodes outside the convex hull take their nearest point's value."""
    tri = Delaunay(points)
    simplex = tri.find_simplex(nodes)
    inside = simplex >= 0
    d = points.shape[1]
    transform = tri.transform[simplex[inside]]  # (g, d+1, d)
    partial = np.einsum("gij,gj->gi", transform[:, :d], nodes[inside] - transform[:, d])
    bary = np.concatenate([partial, 1 - partial.sum(1, keepdims=True)], axis=1)
    rows_in = np.repeat(np.flatnonzero(inside), d + 1)
    cols_in = tri.simplices[simplex[inside]].ravel()
    outside = np.flatnonzero(~inside)
    _, nearest = cKDTree(points).query(nodes[outside])
    rows = np.concatenate([rows_in, outside])
    cols = np.concatenate([cols_in, nearest])
    vals = np.concatenate([bary.ravel(), np.ones(len(outside))])
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(nodes), len(points)))


def grid_to_point_matrix(tree: KDTreeDecomposition, grids: LeafGrids, queries: np.ndarray) -> sp.csr_matrix:
    """`(M, L * prod(S))` multilinear interpolation from the leaf grids to `queries (M, d)`.

    A query belongs to the leaf whose tree cell contains it. Inside the leaf's box it is interpolated; in the
    gap between the box and the cell it is extrapolated linearly from the nearest grid cell (exact for linear
    fields), at most half a box beyond the box, and clamped further out. Grid node i of an axis with S nodes
    sits exactly at i / (S - 1) of the box: the endpoint-inclusive convention, no half-cell shift."""
    leaf = tree.assign(queries)
    span = np.maximum(grids.upper - grids.lower, 1e-300)
    local = np.clip((queries - grids.lower[leaf]) / span[leaf], -0.5, 1.5)
    aligned = np.take_along_axis(local, grids.axes[leaf], axis=1)
    shape = np.array(grids.shape)
    position = aligned * (shape - 1)
    base = np.clip(np.floor(position).astype(int), 0, shape - 2)
    frac = position - base  # outside [0, 1] in the gaps: linear extrapolation
    rows, cols, vals = [], [], []
    for corner in itertools.product((0, 1), repeat=len(shape)):
        corner = np.array(corner)
        weight = np.prod(np.where(corner, frac, 1 - frac), axis=1)
        index = np.ravel_multi_index((base + corner).T, grids.shape)
        rows.append(np.arange(len(queries)))
        cols.append(leaf * grids.nodes_per_leaf + index)
        vals.append(weight)
    total = grids.n_leaves * grids.nodes_per_leaf
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(len(queries), total))
