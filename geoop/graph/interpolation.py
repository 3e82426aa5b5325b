"""Fixed linear maps between point sets of one geometry, as sparse matrices built once per geometry: inverse-
distance interpolation from nodes to queries, and the extension of data given on part of the boundary (a
Dirichlet value, a Neumann flux) to every point."""
from __future__ import annotations

import numpy as np
import torch

from geoop.graph.neighbors import knn_search
from geoop.graph.scatter import scatter_sum


def _sparse(rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values.float(), shape, check_invariants=True).coalesce()


def idw_matrix(pos: torch.Tensor, queries: torch.Tensor, k: int = 3) -> torch.Tensor:
    """`(M, N)` inverse-distance weights (power 2) of each query's k nearest of `pos (N, d)`; a query on a
    node takes that node's value exactly."""
    k = min(k, len(pos))
    nb = knn_search(pos, k, queries=queries)
    src, dst = nb.edge_index
    d = nb.distance.double()
    hit = d <= 1e-9
    on_node = torch.zeros(len(queries), dtype=torch.bool)
    on_node[dst[hit]] = True
    w = torch.where(on_node[dst], hit.double(), 1.0 / d.clamp_min(1e-12) ** 2)
    w = w / scatter_sum(w[:, None], dst, len(queries))[dst, 0]
    return _sparse(dst, src, w, (len(queries), len(pos)))


def extension_matrix(pos: torch.Tensor, on: torch.Tensor, measure: torch.Tensor, queries: torch.Tensor | None = None,
                     reach: float = 4.0, max_neighbors: int = 1024) -> torch.Tensor:
    """`(M, N)` weights that carry data given on the nodes `on (N,)` bool (part of the boundary) to every query
    (default: every node): the nodes of the set within `reach` times the query's distance to the set, weighted
    by their boundary measure `measure (N,)` (arc length, area) over the distance to the power d, normalised to
    sum 1; a node of the set keeps its own value. The neighbourhood is set by distances, not by a count, so a
    finer boundary mesh gives the same extension; at most `max_neighbors` (the nearest) per query bound the
    cost. Rows are empty (the extension is 0) when `on` is empty.

    Applied to boundary values it is a smooth stand-in for them inside the domain (Shepard's method; with these
    weights it is the harmonic extension on a half-space, whose Poisson kernel falls off as distance^-d), so a
    point far from the boundary still sees the data of the boundary part nearest to it."""
    from scipy.spatial import cKDTree

    queries = pos if queries is None else queries
    index = torch.nonzero(on).flatten()
    m, n = len(queries), len(pos)
    if not len(index):
        return _sparse(torch.zeros(0, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), torch.zeros(0), (m, n))
    source = pos[index].double().numpy()
    q = queries.double().numpy()
    tree = cKDTree(source)
    nearest, _ = tree.query(q)
    balls = tree.query_ball_point(q, reach * nearest + 1e-12)
    rows = np.repeat(np.arange(m), [len(b) for b in balls])
    cols = np.fromiter((j for b in balls for j in b), dtype=np.int64, count=len(rows))
    d = np.linalg.norm(q[rows] - source[cols], axis=1)
    order = np.lexsort((d, rows))  # per query nearest first, so a cap keeps the nearest
    rows, cols, d = rows[order], cols[order], d[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)
    keep = rank < max_neighbors
    rows, cols, d = rows[keep], cols[keep], d[keep]
    w = measure.double().numpy()[index.numpy()][cols].clip(1e-30) / np.maximum(d, 1e-12) ** pos.shape[1]
    hit = d <= 1e-9
    w = np.where(np.isin(rows, rows[hit]), hit.astype(np.float64), w)
    w /= np.bincount(rows, weights=w, minlength=m)[rows]
    return _sparse(torch.from_numpy(rows), index[torch.from_numpy(cols)], torch.from_numpy(w), (m, n))
