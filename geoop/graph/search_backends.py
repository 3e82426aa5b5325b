"""Candidate generators for radius search. Each returns int64 keys `query * n_points + point` of a superset of
the pairs within the radius, restricted to equal batch ids; `neighbors.py` filters them exactly and sorts.

- `kdtree`: scipy cKDTree (CPU): `sparse_distance_matrix` between two sets; a set against itself has its own
  exact path, `kdtree_self_search`, built on `query_pairs` (4x faster here).
- `cell_list`: a uniform grid of cells of size >= r in pure torch (CPU and CUDA): points sorted by cell key,
  each query scans its 3^(d-1) neighbor columns as contiguous key ranges, in chunks of bounded size.
- `brute`: every pair, chunked (the reference; O(N M)).
"""
from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy.spatial import cKDTree

from geoop.graph.distance import pair_squared_distance, squared_distance

# Candidates are inflated by this relative margin so that the exact filter alone decides pairs at distance r.
INFLATE = 1e-9
# query sets larger than this are split over the torch threads for the KD-tree search
PARALLEL_QUERIES = 20_000


def ranges(batch: torch.Tensor, n_batches: int) -> list[tuple[int, int]]:
    counts = torch.bincount(batch, minlength=n_batches).cpu().numpy()
    ptr = np.concatenate([[0], np.cumsum(counts)])
    return [(int(ptr[b]), int(ptr[b + 1])) for b in range(n_batches)]


def kdtree_keys(points: torch.Tensor, queries: torch.Tensor, radius: float, batch_points: torch.Tensor,
                batch_queries: torch.Tensor, n_batches: int) -> torch.Tensor:
    """Candidate keys between two sets from scipy KD-trees (`sparse_distance_matrix`), one tree pair per
    sample (batches must be sorted)."""
    p, q = points.detach().cpu().numpy(), queries.detach().cpu().numpy()
    n = len(p)
    keys = []
    threads = torch.get_num_threads()
    for (p0, p1), (q0, q1) in zip(ranges(batch_points, n_batches), ranges(batch_queries, n_batches), strict=True):
        if p1 > p0 and q1 > q0:
            tree = cKDTree(p[p0:p1])

            def pairs(a: int, b: int, tree: cKDTree = tree, p0: int = p0) -> np.ndarray:
                m = tree.sparse_distance_matrix(cKDTree(q[a:b]), _candidate_radius(radius), output_type="ndarray")
                return (m["j"].astype(np.int64) + a) * n + (m["i"].astype(np.int64) + p0)

            cuts = np.linspace(q0, q1, threads + 1 if q1 - q0 > PARALLEL_QUERIES else 2).astype(np.int64)
            if len(cuts) == 2:
                keys.append(pairs(q0, q1))
            else:  # scipy releases the GIL: query slices search in threads (the torch thread count)
                with ThreadPoolExecutor(threads) as pool:
                    keys += list(pool.map(pairs, cuts[:-1], cuts[1:]))
    return torch.from_numpy(np.concatenate(keys)) if keys else torch.zeros(0, dtype=torch.int64)


def _candidate_radius(radius: float) -> float:
    return radius * (1 + INFLATE) + np.finfo(np.float64).tiny


def kdtree_self_search(points: torch.Tensor, radius: float, batch: torch.Tensor, n_batches: int, loop: bool
                       ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Radius graph of a set with itself, exact and canonically ordered: `(src, dst, squared distance)`.

    `query_pairs` yields each unordered pair once (4x faster than `sparse_distance_matrix` here); distances
    are computed once for the pairs with src < dst; scipy's sparse `A + A^T` (linear-time C code) then lays out
    both directions (and the self loops) in canonical CSR order, carrying each entry's pair id."""
    import scipy.sparse as sp

    x = points.detach().cpu()
    n = len(x)
    halves = []
    for p0, p1 in ranges(batch, n_batches):
        if p1 - p0 > 1:
            pairs = cKDTree(x[p0:p1].numpy()).query_pairs(_candidate_radius(radius), output_type="ndarray")
            halves.append((pairs[:, 1] + p0) * n + (pairs[:, 0] + p0))  # query_pairs gives i < j
    lower = np.sort(np.concatenate(halves)) if halves else np.zeros(0, dtype=np.int64)  # dst > src
    dst, src = np.divmod(lower, n)
    d2 = pair_squared_distance(x, x, torch.from_numpy(src), torch.from_numpy(dst)).numpy()
    near = d2 <= radius * radius
    if not near.all():
        src, dst, d2 = src[near], dst[near], d2[near]
    ids = np.arange(1, len(src) + 1, dtype=np.int64)  # 1-based: sparse sums drop explicit zeros
    rows = np.searchsorted(dst, np.arange(n + 1))
    half = sp.csr_matrix((ids, src, rows), shape=(n, n))
    full = half + half.T
    if loop:
        d2 = np.concatenate([d2, [0.0]])
        full = full + sp.identity(n, dtype=np.int64, format="csr") * (len(d2))
    full = full.tocsr()
    full.sort_indices()
    out_dst = np.repeat(np.arange(n, dtype=np.int64), np.diff(full.indptr))
    return (torch.from_numpy(full.indices.astype(np.int64)), torch.from_numpy(out_dst),
            torch.from_numpy(d2[full.data - 1]))


def plan_chunks(counts: torch.Tensor, budget: int) -> list[tuple[int, int]]:
    """Split rows `[0, len(counts))` into consecutive ranges whose summed counts stay near `budget` (a row
    larger than the budget gets a range of its own). Sums are int64, so totals past 2^31 are fine."""
    if len(counts) == 0:
        return []
    cum = torch.cumsum(counts.to(torch.int64), 0)
    bounds, start = [], 0
    while start < len(counts):
        before = int(cum[start - 1]) if start else 0
        stop = int(torch.searchsorted(cum, torch.tensor(before + budget, device=cum.device), right=True))
        stop = max(stop, start + 1)
        bounds.append((start, stop))
        start = stop
    return bounds


def cell_list_keys(points: torch.Tensor, q: torch.Tensor, radius: float, batch_points: torch.Tensor,
                   batch_queries: torch.Tensor, n_batches: int, budget: int = 1 << 23) -> torch.Tensor:
    """Candidate keys from a hash grid of cell size >= radius, entirely in torch (runs where the data is)."""
    n, dim, device = len(points), points.shape[1], points.device
    if n == 0 or len(q) == 0:
        return torch.zeros(0, dtype=torch.int64, device=device)
    both = torch.cat([points, q]).to(torch.float64)
    lo, hi = both.min(0).values, both.max(0).values
    extent = float((hi - lo).max()) or 1.0
    cell = max(radius * (1 + INFLATE), extent / 2**20)
    while True:  # grow cells until batch * cells fits in int64 keys
        shape = ((hi - lo) / cell).floor().to(torch.int64) + 1
        if float(torch.prod(shape.double())) * max(n_batches, 1) < 2.0**62:
            break
        cell *= 2
    stride = torch.ones(dim, dtype=torch.int64, device=device)
    for a in range(dim - 2, -1, -1):
        stride[a] = stride[a + 1] * shape[a + 1]
    n_cells = int(stride[0] * shape[0])

    def cell_of(x: torch.Tensor) -> torch.Tensor:
        return ((x.to(torch.float64) - lo) / cell).floor().to(torch.int64).clamp_(min=torch.zeros_like(shape),
                                                                              max=shape - 1)

    point_key = (cell_of(points) * stride).sum(1) + batch_points * n_cells
    sorted_key, order = torch.sort(point_key)
    sorted_points = points[order]  # candidates of a query are contiguous runs here: cache-friendly gathers
    bound = (radius * (1 + INFLATE)) ** 2
    qc = cell_of(q)
    base = batch_queries * n_cells
    starts, counts = [], []
    for offset in itertools.product((-1, 0, 1), repeat=dim - 1):  # columns along the last axis
        lead = qc[:, :-1] + torch.tensor(offset, dtype=torch.int64, device=device)
        valid = ((lead >= 0) & (lead < shape[:-1])).all(1)
        column = base + (lead.clamp(min=0) * stride[:-1]).sum(1)
        first = column + (qc[:, -1] - 1).clamp(min=0)
        last = column + (qc[:, -1] + 1).clamp(max=int(shape[-1]) - 1)
        s = torch.searchsorted(sorted_key, first)
        e = torch.searchsorted(sorted_key, last, right=True)
        starts.append(s)
        counts.append(torch.where(valid, e - s, torch.zeros_like(s)))
    starts_t, counts_t = torch.stack(starts, 1), torch.stack(counts, 1)  # (Q, 3^(d-1))
    keys = []
    for a, b in plan_chunks(counts_t.sum(1), budget):
        c = counts_t[a:b].reshape(-1)
        total = int(c.sum())
        if total == 0:
            continue
        slot = torch.repeat_interleave(torch.arange(len(c), device=device), c)
        first_of_slot = torch.cumsum(c, 0) - c
        position = starts_t[a:b].reshape(-1)[slot] + (torch.arange(total, device=device) - first_of_slot[slot])
        query = a + torch.div(slot, starts_t.shape[1], rounding_mode="floor")
        near = pair_squared_distance(sorted_points, q, position, query) <= bound  # drop most far candidates
        keys.append(query[near] * n + order[position[near]])
    return torch.cat(keys) if keys else torch.zeros(0, dtype=torch.int64, device=device)


def brute_keys(points: torch.Tensor, q: torch.Tensor, radius: float, batch_points: torch.Tensor,
               batch_queries: torch.Tensor, n_batches: int, budget: int = 1 << 22) -> torch.Tensor:
    """Keys of all same-batch pairs within the radius, by direct distances in chunks of queries."""
    n = len(points)
    keys = []
    step = max(1, budget // max(n, 1))
    for a in range(0, len(q), step):
        qq = q[a:a + step]
        d2 = squared_distance(points[None, :, :], qq[:, None, :])  # (C, N)
        hit = (d2 <= radius * radius) & (batch_queries[a:a + step, None] == batch_points[None, :])
        qi, pi = hit.nonzero(as_tuple=True)
        keys.append((qi + a) * n + pi)
    return torch.cat(keys) if keys else torch.zeros(0, dtype=torch.int64, device=points.device)


BACKENDS = {"kdtree": kdtree_keys, "cell_list": cell_list_keys, "brute": brute_keys}
