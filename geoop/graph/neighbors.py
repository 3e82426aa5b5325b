"""Neighbor search: radius and k-nearest neighbors between point sets, batched, exact, deterministic.

Every result is an `edge_index (2, E)` int64 with row 0 the point (source) index and row 1 the query (target)
index, sorted by query then point, plus the distances `(E,)`. Pairs within the same batch id only. A pair is
in the radius graph iff `sum_k (p_k - q_k)^2 <= r^2`, computed the same way by every backend, so backends agree
exactly (in float64 on CPU). There is no neighbor cap unless `max_neighbors` is given.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial import cKDTree

from geoop.graph.distance import pair_squared_distance, squared_distance
from geoop.graph.search_backends import BACKENDS, INFLATE, kdtree_self_search, ranges

log = logging.getLogger(__name__)
_chosen: set[str] = set()


@dataclass
class Neighbors:
    """Pairs `edge_index (2, E)` (row 0: point, row 1: query) with their `distance (E,)`."""

    edge_index: torch.Tensor
    distance: torch.Tensor

    def __len__(self) -> int:
        return self.edge_index.shape[1]

    def offsets(self, n_queries: int) -> torch.Tensor:
        """CSR row pointer `(n_queries + 1,)` int64: query i's pairs are `[offsets[i], offsets[i+1])`."""
        counts = torch.bincount(self.edge_index[1], minlength=n_queries)
        return torch.cat([counts.new_zeros(1), torch.cumsum(counts, 0)])


def _as_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()  # torch cannot wrap read-only arrays (Geometry's are)
    t = torch.as_tensor(x)
    if t.ndim != 2 or t.shape[1] not in (1, 2, 3) or not torch.is_floating_point(t):
        raise ValueError(f"{name} must be a float array of shape (N, 1|2|3), got {tuple(t.shape)} {t.dtype}")
    return t


def _batch(batch, n: int, device: torch.device, name: str) -> torch.Tensor:
    if batch is None:
        return torch.zeros(n, dtype=torch.int64, device=device)
    batch = torch.as_tensor(batch, dtype=torch.int64, device=device)
    if batch.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {tuple(batch.shape)}")
    if n > 1 and bool((batch[1:] < batch[:-1]).any()):
        raise ValueError(f"{name} must be sorted (samples stored one after another, as in a PyG Batch)")
    return batch


def _pick_backend(backend: str, device: torch.device) -> str:
    if backend == "auto":
        backend = "cell_list" if device.type == "cuda" else "kdtree"
        if backend not in _chosen:
            _chosen.add(backend)
            log.info("neighbor search on %s uses the %s backend", device.type, backend)
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from auto, {', '.join(BACKENDS)}")
    if backend == "kdtree" and device.type != "cpu":
        raise ValueError("the kdtree backend runs on CPU; use backend='cell_list' for CUDA tensors")
    return backend


def _sort(keys: torch.Tensor) -> torch.Tensor:
    if keys.device.type == "cpu":  # numpy's vectorised sort is ~3x faster than torch's on CPU
        return torch.from_numpy(np.sort(keys.numpy()))
    return torch.sort(keys).values


def _finish(points: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor, radius2: float | None,
            loop: bool) -> Neighbors:
    """Canonical order (query, point) of candidate keys, then the exact filter (`radius2` None: keep all)."""
    n = max(len(points), 1)
    keys = _sort(keys)
    dst = torch.div(keys, n, rounding_mode="floor")
    src = keys - dst * n
    if not loop:
        other = src != dst
        src, dst = src[other], dst[other]
    d2 = pair_squared_distance(points, queries, src, dst)
    if radius2 is not None:
        keep = d2 <= radius2
        src, dst, d2 = src[keep], dst[keep], d2[keep]
    return Neighbors(torch.stack([src, dst]), d2.sqrt())


def _cap(result: Neighbors, k: int) -> Neighbors:
    """Keep the k nearest per query (ties: lower point index), in canonical order again. Only the pairs of
    queries with more than k are ranked (a kNN search has few: those with ties at the k-th distance)."""
    src, dst = result.edge_index
    if not len(dst):
        return result
    over = torch.bincount(dst)[dst] > k
    if not bool(over.any()):  # no query has more: nothing to cut
        return result
    crowded = torch.nonzero(over).flatten()
    order = torch.from_numpy(np.lexsort((src[crowded].cpu().numpy(), result.distance[crowded].cpu().numpy(),
                                         dst[crowded].cpu().numpy()))).to(src.device)
    ranked = crowded[order]
    dst_sorted = dst[ranked]
    rank = torch.arange(len(ranked), device=src.device) - torch.searchsorted(dst_sorted, dst_sorted)
    keep = torch.cat([torch.nonzero(~over).flatten(), ranked[rank < k]]).sort().values  # canonical order
    return Neighbors(result.edge_index[:, keep], result.distance[keep])


def radius_search(points, radius: float, queries=None, *, batch_points=None, batch_queries=None,
                  loop: bool | None = None, max_neighbors: int | None = None, backend: str = "auto") -> Neighbors:
    """All points within `radius` of each query.

    Args:
        points: `(N, d)` float tensor/array. queries: `(M, d)`; None searches `points` against itself.
        batch_points, batch_queries: `(N,)`, `(M,)` sorted sample ids; pairs never cross samples.
        loop: keep each point as its own neighbor (self search only; default False there).
        max_neighbors: keep only the nearest this many per query (ties: lower index). None: no cap.
        backend: "auto" (kdtree on CPU, cell_list on CUDA), "kdtree", "cell_list" or "brute".
    Returns:
        `Neighbors` with `edge_index (2, E)` int64 (row 0 point, row 1 query) and `distance (E,)`.
    """
    points = _as_tensor(points, "points")
    self_search = queries is None
    q = points if self_search else _as_tensor(queries, "queries").to(points.device, points.dtype)
    if not (radius >= 0 and np.isfinite(radius)):
        raise ValueError(f"radius must be a finite number >= 0, got {radius}")
    if q.shape[1] != points.shape[1]:
        raise ValueError(f"points are {points.shape[1]}D but queries are {q.shape[1]}D")
    bp = _batch(batch_points, len(points), points.device, "batch_points")
    bq = bp if self_search else _batch(batch_queries, len(q), points.device, "batch_queries")
    n_batches = int(max(bp.max() if len(bp) else -1, bq.max() if len(bq) else -1)) + 1
    name = _pick_backend(backend, points.device)
    if name == "kdtree" and self_search and len(points):
        src, dst, d2 = kdtree_self_search(points, float(radius), bp, n_batches, bool(loop))
        result = Neighbors(torch.stack([src, dst]), d2.sqrt())
    elif len(points) == 0 or len(q) == 0:
        result = _finish(points, q, torch.zeros(0, dtype=torch.int64, device=points.device), None, loop=True)
    else:
        keys = BACKENDS[name](points, q, float(radius), bp, bq, n_batches)
        result = _finish(points, q, keys, float(radius) ** 2, loop=bool(loop) or not self_search)
    return result if max_neighbors is None else _cap(result, max_neighbors)


#: candidate pairs a lattice search holds at once (queries x window nodes)
LATTICE_CANDIDATES = 1 << 24


def lattice_radius_search(axes: list[torch.Tensor], radius: float, queries: torch.Tensor) -> Neighbors:
    """`radius_search(points, radius, queries)` where the points are the nodes of a rectilinear lattice, the
    product of the increasing per-axis coordinates `axes [(n_a,)] * d` in row-major order (last axis
    fastest): the same pairs, distances and canonical order, by arithmetic instead of a tree.

    Each query's candidates along axis a are the coordinates within r of its own (a binary search), so its
    window holds at most `max_a w_a` per axis; per-axis squared differences are summed in axis order over the
    window (`sum_a (p_a - q_a)^2`, the one definition of `geoop.graph.distance`), kept where <= r^2, and read
    out row-major, which is the canonical (query, point) order already: no sort. Queries run in slices of
    `LATTICE_CANDIDATES` window entries."""
    q = _as_tensor(queries, "queries").to(axes[0].device, axes[0].dtype)
    d = len(axes)
    if q.shape[1] != d:
        raise ValueError(f"the lattice is {d}D but queries are {q.shape[1]}D")
    # the window is a superset (its bounds are rounded where the coordinates are large); the exact filter decides
    size = max([float(a.abs().max()) for a in axes if len(a)] + [float(q.abs().max()) if len(q) else 0.0])
    reach = float(radius) * (1 + 1e-6) + 8 * float(torch.finfo(q.dtype).eps) * size + float(torch.finfo(q.dtype).tiny)
    sizes = [len(a) for a in axes]
    strides = [int(np.prod(sizes[a + 1:])) for a in range(d)]
    first = [torch.searchsorted(axes[a], q[:, a] - reach) for a in range(d)]
    width = [torch.searchsorted(axes[a], q[:, a] + reach, right=True) - first[a] for a in range(d)]
    window = [max(int(w.max()) if len(w) else 0, 1) for w in width]
    step = max(1, LATTICE_CANDIDATES // int(np.prod(window)))
    src_parts, dst_parts, dist_parts = [], [], []
    for m0 in range(0, len(q), step):
        rows_ = slice(m0, m0 + step)
        total, index = None, None
        for a in range(d):
            shape = [-1] + [window[b] if b == a else 1 for b in range(d)]
            offset = torch.arange(window[a], device=q.device)
            node = (first[a][rows_, None] + offset).clamp(max=sizes[a] - 1)
            diff = axes[a][node] - q[rows_, a, None]
            square = torch.where(offset < width[a][rows_, None], diff * diff, torch.inf).reshape(shape)
            total = square if total is None else total + square
            part = (node * strides[a]).reshape(shape)
            index = part if index is None else index + part
        keep = total <= float(radius) ** 2
        hits = torch.nonzero(keep.reshape(len(keep), -1))
        src_parts.append(index.reshape(len(keep), -1)[hits[:, 0], hits[:, 1]])  # one node index per window entry
        dst_parts.append(hits[:, 0] + m0)
        dist_parts.append(total.reshape(len(keep), -1)[hits[:, 0], hits[:, 1]].sqrt())
    if not src_parts:
        empty = torch.zeros(0, dtype=torch.int64, device=q.device)
        return Neighbors(torch.stack([empty, empty]), q.new_zeros(0))
    return Neighbors(torch.stack([torch.cat(src_parts), torch.cat(dst_parts)]), torch.cat(dist_parts))


def knn_search(points, k: int, queries=None, *, batch_points=None, batch_queries=None, loop: bool | None = None,
               backend: str = "auto") -> Neighbors:
    """The `k` nearest points of each query (fewer where its sample has fewer points); ties at the k-th
    distance go to the lower point index. Same arguments and result layout as `radius_search`.

    backend: "auto"/"kdtree" (on CPU; CUDA inputs are searched on CPU and the result moved back: each query's
    k-th distance from the tree, then every candidate within it, so ties are resolved exactly) or "brute"
    (chunked exact search where the data is)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    points = _as_tensor(points, "points")
    self_search = queries is None
    q = points if self_search else _as_tensor(queries, "queries").to(points.device, points.dtype)
    if q.shape[1] != points.shape[1]:
        raise ValueError(f"points are {points.shape[1]}D but queries are {q.shape[1]}D")
    bp = _batch(batch_points, len(points), points.device, "batch_points")
    bq = bp if self_search else _batch(batch_queries, len(q), points.device, "batch_queries")
    keep_self = bool(loop) or not self_search
    if backend not in ("auto", "kdtree", "brute"):
        raise ValueError(f"unknown kNN backend {backend!r}; choose from auto, kdtree, brute")
    if len(points) == 0 or len(q) == 0:
        keys = torch.zeros(0, dtype=torch.int64, device=points.device)
    elif backend == "brute":
        keys = _knn_brute_keys(points, q, k, bp, bq, keep_self)
    else:
        keys = _knn_kdtree_keys(points, q, k + (0 if keep_self else 1), bp, bq).to(points.device)
    return _cap(_finish(points, q, keys, None, loop=keep_self), k)


def _knn_kdtree_keys(points: torch.Tensor, q: torch.Tensor, k: int, bp: torch.Tensor, bq: torch.Tensor
                     ) -> torch.Tensor:
    """Keys of every same-sample point within each query's k-th nearest distance (a superset with ties)."""
    n_batches = int(max(bp.max(), bq.max())) + 1
    p_np, q_np = points.detach().cpu().double().numpy(), q.detach().cpu().double().numpy()
    n, keys = len(points), []
    for (p0, p1), (q0, q1) in zip(ranges(bp, n_batches), ranges(bq, n_batches), strict=True):
        if p1 == p0 or q1 == q0:
            continue
        tree, m, kk = cKDTree(p_np[p0:p1]), q1 - q0, min(k, p1 - p0)
        workers = torch.get_num_threads()
        dist, idx = tree.query(q_np[q0:q1], k=min(kk + 1, p1 - p0), workers=workers)
        dist, idx = np.asarray(dist).reshape(m, -1), np.asarray(idx).reshape(m, -1)
        rows = np.repeat(np.arange(q0, q1, dtype=np.int64), kk)
        if kk == p1 - p0:  # every point of the sample is a candidate
            keys.append(rows * n + idx[:, :kk].ravel() + p0)
            continue
        bound = dist[:, kk - 1] * (1 + INFLATE) + np.finfo(np.float64).tiny
        tied = np.flatnonzero(dist[:, kk] <= bound)  # a (k+1)-th point as near as the k-th: ask for all of them
        clean = np.ones(m, dtype=bool)
        clean[tied] = False
        keys.append(rows.reshape(m, kk)[clean].ravel() * n + idx[clean, :kk].ravel() + p0)
        if len(tied):
            lists = tree.query_ball_point(q_np[q0 + tied], bound[tied], workers=workers)
            lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
            src = np.concatenate([np.asarray(x, dtype=np.int64) for x in lists]) + p0
            keys.append(np.repeat(q0 + tied, lengths) * n + src)
    return torch.from_numpy(np.concatenate(keys)) if keys else torch.zeros(0, dtype=torch.int64)


def _knn_brute_keys(points: torch.Tensor, q: torch.Tensor, k: int, bp: torch.Tensor, bq: torch.Tensor,
                    keep_self: bool, budget: int = 1 << 22) -> torch.Tensor:
    """Keys of the k nearest per query by a stable sort of all distances (ties: lower index first)."""
    n, keys = len(points), []
    step = max(1, budget // n)
    for a in range(0, len(q), step):
        d2 = squared_distance(points[None, :, :], q[a:a + step, None, :])
        d2 = d2.masked_fill(bq[a:a + step, None] != bp[None, :], float("inf"))
        if not keep_self:
            rows = torch.arange(len(d2), device=d2.device)
            d2[rows, rows + a] = float("inf")
        values, index = torch.sort(d2, dim=1, stable=True)
        values, index = values[:, :k], index[:, :k]
        qi, col = torch.isfinite(values).nonzero(as_tuple=True)
        keys.append((qi + a) * n + index[qi, col])
    return torch.cat(keys)
