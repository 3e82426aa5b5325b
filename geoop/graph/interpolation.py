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
    rows, cols, d = _within_reach(cKDTree(source), q, reach, max_neighbors)
    w = measure.double().numpy()[index.numpy()][cols].clip(1e-30) / np.maximum(d, 1e-12) ** pos.shape[1]
    hit = d <= 1e-9
    on_node = np.zeros(m, dtype=bool)
    on_node[rows[hit]] = True
    w = np.where(on_node[rows], hit.astype(np.float64), w)
    w /= np.bincount(rows, weights=w, minlength=m)[rows]
    cols = index.numpy()[cols]
    order = np.lexsort((cols, rows))  # row-major with sorted columns: already coalesced
    rows, cols, w = (torch.from_numpy(a[order]) for a in (rows, cols, w))
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), w.float(), (m, n), is_coalesced=True,
                                   check_invariants=False)


def _within_reach(tree, q: np.ndarray, reach: float, cap: int, pairs_per_pass: int = 2_000_000
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query of `q (M, d)`, the points of `tree` within `reach` times its distance to the nearest one
    (at most `cap`, the nearest): `(rows, cols, distances)`, rows ascending. Up to `cap` points all distances
    are computed (in blocks); beyond, k nearest neighbours are asked for, doubling k for the queries whose k-th
    neighbour is still in reach, so each query costs about what its ball holds."""
    if tree.n <= cap:
        from scipy.spatial.distance import cdist

        out = []
        chunk = max(1, pairs_per_pass // tree.n)
        for start in range(0, len(q), chunk):
            d = cdist(q[start:start + chunk], tree.data)
            r, c = np.nonzero(d <= reach * d.min(1, keepdims=True) + 1e-12)
            out.append((r + start, c, d[r, c]))
        return tuple(np.concatenate(a) for a in zip(*out, strict=True))
    nearest = tree.query(q)[0]
    most = min(tree.n, cap)
    out_rows, out_cols, out_d = [], [], []
    todo, k = np.arange(len(q)), min(16, most)
    while len(todo):
        chunk = max(1, pairs_per_pass // k)
        unfinished = []
        for start in range(0, len(todo), chunk):
            at = todo[start:start + chunk]
            d, j = tree.query(q[at], k=k)
            d, j = d.reshape(len(at), k), j.reshape(len(at), k)
            bound = reach * nearest[at] + 1e-12
            done = (d[:, -1] > bound) | (k >= most)
            inside = (d <= bound[:, None]) & done[:, None]
            out_rows.append(np.broadcast_to(at[:, None], d.shape)[inside])
            out_cols.append(j[inside])
            out_d.append(d[inside])
            unfinished.append(at[~done])
        todo, k = np.concatenate(unfinished), min(2 * k, most)
    return np.concatenate(out_rows), np.concatenate(out_cols).astype(np.int64), np.concatenate(out_d)


