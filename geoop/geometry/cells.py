"""Cell tables: dimension, corner nodes, simplex splits and facets of each meshio cell type.

Everything here works on `cells: dict[str, (C, k) int64]`, keyed by meshio cell-type names. Quadratic cells
(``triangle6``, ``tetra10``, ...) are handled through their corner nodes; their mid-edge nodes take part in
connectivity (mesh edges) but not in measures.
"""
from __future__ import annotations

import numpy as np

CELL_DIM = {
    "vertex": 0,
    "line": 1, "line3": 1,
    "triangle": 2, "triangle6": 2, "triangle7": 2, "quad": 2, "quad8": 2, "quad9": 2, "polygon": 2,
    "tetra": 3, "tetra10": 3, "hexahedron": 3, "hexahedron20": 3, "hexahedron27": 3,
    "wedge": 3, "wedge15": 3, "pyramid": 3, "pyramid13": 3,
}

# The linear type whose corner nodes come first in each (possibly quadratic) type.
LINEAR_TYPE = {
    "vertex": "vertex", "line": "line", "line3": "line",
    "triangle": "triangle", "triangle6": "triangle", "triangle7": "triangle",
    "quad": "quad", "quad8": "quad", "quad9": "quad",
    "tetra": "tetra", "tetra10": "tetra", "hexahedron": "hexahedron", "hexahedron20": "hexahedron",
    "hexahedron27": "hexahedron", "wedge": "wedge", "wedge15": "wedge", "pyramid": "pyramid",
    "pyramid13": "pyramid",
}

N_CORNERS = {"vertex": 1, "line": 2, "triangle": 3, "quad": 4, "tetra": 4, "hexahedron": 8, "wedge": 6,
             "pyramid": 5}

# Splits of each linear cell into simplices of its own dimension (VTK node order).
SIMPLEX_SPLIT = {
    "vertex": [[0]],
    "line": [[0, 1]],
    "triangle": [[0, 1, 2]],
    "quad": [[0, 1, 2], [0, 2, 3]],
    "tetra": [[0, 1, 2, 3]],
    "hexahedron": [[0, 1, 2, 6], [0, 2, 3, 6], [0, 3, 7, 6], [0, 7, 4, 6], [0, 4, 5, 6], [0, 5, 1, 6]],
    "wedge": [[0, 1, 2, 3], [1, 2, 5, 3], [1, 5, 4, 3]],
    "pyramid": [[0, 1, 2, 4], [0, 2, 3, 4]],
}

# Facets (one dimension lower) of each linear cell, as corner-node lists.
FACETS = {
    "line": [[0], [1]],
    "triangle": [[0, 1], [1, 2], [2, 0]],
    "quad": [[0, 1], [1, 2], [2, 3], [3, 0]],
    "tetra": [[0, 2, 1], [0, 1, 3], [1, 2, 3], [0, 3, 2]],
    "hexahedron": [[0, 3, 2, 1], [4, 5, 6, 7], [0, 1, 5, 4], [1, 2, 6, 5], [2, 3, 7, 6], [3, 0, 4, 7]],
    "wedge": [[0, 2, 1], [3, 4, 5], [0, 1, 4, 3], [1, 2, 5, 4], [2, 0, 3, 5]],
    "pyramid": [[0, 3, 2, 1], [0, 1, 4], [1, 2, 4], [2, 3, 4], [3, 0, 4]],
}

# Edges of each linear cell (for mesh-edge graphs).
EDGES = {
    "line": [[0, 1]],
    "triangle": [[0, 1], [1, 2], [2, 0]],
    "quad": [[0, 1], [1, 2], [2, 3], [3, 0]],
    "tetra": [[0, 1], [1, 2], [2, 0], [0, 3], [1, 3], [2, 3]],
    "hexahedron": [[0, 1], [1, 2], [2, 3], [3, 0], [4, 5], [5, 6], [6, 7], [7, 4], [0, 4], [1, 5], [2, 6],
                   [3, 7]],
    "wedge": [[0, 1], [1, 2], [2, 0], [3, 4], [4, 5], [5, 3], [0, 3], [1, 4], [2, 5]],
    "pyramid": [[0, 1], [1, 2], [2, 3], [3, 0], [0, 4], [1, 4], [2, 4], [3, 4]],
}


def top_dim(cells: dict[str, np.ndarray]) -> int:
    """Highest cell dimension present; -1 for a bare point set."""
    dims = [CELL_DIM[t] for t, c in cells.items() if len(c) and t in CELL_DIM]
    return max(dims, default=-1)


def corners(cell_type: str, conn: np.ndarray) -> tuple[str, np.ndarray]:
    """Linear type and corner-node connectivity `(C, k)` of a (possibly quadratic) cell block."""
    linear = LINEAR_TYPE[cell_type]
    return linear, conn[:, : N_CORNERS[linear]]


def simplices(cells: dict[str, np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """All cells of dimension `dim` split into simplices.

    Returns `(S, dim+1)` node indices and `(S,)` the index of the source block-cell in the concatenation of
    the dim-`dim` blocks (in dict order), so that per-simplex values can be gathered back per cell.
    """
    out, owner, offset = [], [], 0
    for cell_type, conn in cells.items():
        if CELL_DIM.get(cell_type) != dim or cell_type == "polygon":
            continue
        linear, corner = corners(cell_type, conn)
        for split in SIMPLEX_SPLIT[linear]:
            out.append(corner[:, split])
            owner.append(offset + np.arange(len(conn)))
        offset += len(conn)
    if not out:
        return np.zeros((0, dim + 1), dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(out).astype(np.int64), np.concatenate(owner)


def simplex_measures(points: np.ndarray, simplex: np.ndarray) -> np.ndarray:
    """Unsigned length/area/volume of each simplex `(S, k)` embedded in `points (N, d)`; returns `(S,)`."""
    k = simplex.shape[1]
    if k == 1:
        return np.ones(len(simplex))
    p0 = points[simplex[:, 0]]
    spans = np.stack([points[simplex[:, i]] - p0 for i in range(1, k)], axis=1)  # (S, k-1, d)
    gram = np.einsum("sid,sjd->sij", spans, spans)
    factorial = float(np.prod(np.arange(1, k)))
    return np.sqrt(np.clip(np.linalg.det(gram), 0.0, None)) / factorial


def rows_seen_once(keys: np.ndarray) -> np.ndarray:
    """Positions of the rows of integer `keys` `(F, k)` that occur exactly once, in the rows' lexicographic
    order (what `np.unique(keys, axis=0)` lists them in; a lexsort of the columns is ~4x faster than it)."""
    if not len(keys):
        return np.zeros(0, dtype=np.int64)
    order = np.lexsort(keys.T[::-1])
    ordered = keys[order]
    new = np.ones(len(keys) + 1, dtype=bool)  # where a run of equal rows starts (and one past the end)
    new[1:-1] = np.any(ordered[1:] != ordered[:-1], axis=1)
    starts = np.flatnonzero(new)
    return order[starts[:-1][np.diff(starts) == 1]]


def boundary_facets(points: np.ndarray, cells: dict[str, np.ndarray], dim: int) -> np.ndarray:
    """Facets owned by exactly one top-dimensional cell, oriented outward.

    For dim-3 cells returns triangles `(F, 3)` (quad faces split in two), for dim-2 cells edges `(F, 2)`,
    for dim-1 cells the end vertices `(F, 1)`. Orientation: for triangles the right-hand normal, and for edges
    in 2D the normal `(dy, -dx)`, point away from the owning cell.
    """
    keys, facets, centers = [], [], []
    for cell_type, conn in cells.items():
        if CELL_DIM.get(cell_type) != dim or cell_type == "polygon":
            continue
        linear, corner = corners(cell_type, conn)
        center = points[corner].mean(axis=1)
        for facet in FACETS[linear]:
            f = corner[:, facet]
            padded = np.full((len(f), 4), -1, dtype=np.int64)
            padded[:, : f.shape[1]] = np.sort(f, axis=1)
            keys.append(padded)
            facets.append(np.pad(f, ((0, 0), (0, 4 - f.shape[1])), constant_values=-1))
            centers.append(center)
    if not keys:
        return np.zeros((0, max(dim, 1)), dtype=np.int64)
    keys = np.concatenate(keys)
    facets = np.concatenate(facets)
    centers = np.concatenate(centers)
    once = rows_seen_once(keys)
    facets, centers = facets[once], centers[once]
    if dim == 1:
        return facets[:, :1]
    if dim == 2:
        edges = facets[:, :2]
        tangent = points[edges[:, 1]] - points[edges[:, 0]]
        normal = np.stack([tangent[:, 1], -tangent[:, 0]], axis=1)
        outward = points[edges].mean(axis=1) - centers
        flip = (normal * outward[:, :2]).sum(axis=1) < 0
        edges[flip] = edges[flip][:, ::-1]
        return edges
    is_quad = facets[:, 3] >= 0
    tris = np.concatenate([facets[:, :3], facets[is_quad][:, [0, 2, 3]]])
    owner_center = np.concatenate([centers, centers[is_quad]])
    p = points[tris]
    normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    flip = (normal * (p.mean(axis=1) - owner_center)).sum(axis=1) < 0
    tris[flip] = tris[flip][:, ::-1]
    return tris


def crop_to_box(points: np.ndarray, cells: dict[str, np.ndarray], box: tuple[tuple[float, float], ...]
                ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The cells whose nodes all lie inside `box` ((lo, hi) per coordinate of `points (N, d)`), and the nodes
    they use: `(M,)` indices of the kept nodes and the kept cells renumbered to them."""
    bounds = np.asarray(box, dtype=np.float64)
    inside = ((points >= bounds[:, 0]) & (points <= bounds[:, 1])).all(axis=1)
    kept = {t: c[inside[c].all(axis=1)] for t, c in cells.items()}
    used = np.unique(np.concatenate([c.ravel() for c in kept.values()]))
    remap = np.full(len(points), -1)
    remap[used] = np.arange(len(used))
    return used, {t: remap[c] for t, c in kept.items() if len(c)}


def unique_edges(cells: dict[str, np.ndarray]) -> np.ndarray:
    """Undirected edges of all cells (corner and quadratic nodes alike), `(E, 2)` with `i < j`, sorted."""
    pairs = []
    for cell_type, conn in cells.items():
        linear = LINEAR_TYPE.get(cell_type)
        if linear in EDGES:
            k = N_CORNERS[linear]
            if conn.shape[1] == k:
                pairs.extend(conn[:, e] for e in EDGES[linear])
            else:  # quadratic: every pair of nodes in the cell is connected (a cell-local clique)
                n = conn.shape[1]
                pairs.extend(conn[:, [i, j]] for i in range(n) for j in range(i + 1, n))
        elif cell_type == "polygon" or conn.shape[1] > 1:
            n = conn.shape[1]
            pairs.extend(conn[:, [i, (i + 1) % n]] for i in range(n))
    if not pairs:
        return np.zeros((0, 2), dtype=np.int64)
    e = np.sort(np.concatenate(pairs).astype(np.int64), axis=1)
    e = e[e[:, 0] != e[:, 1]]
    n = int(e.max()) + 1 if len(e) else 1  # one integer per pair: a 1D unique, ~5x faster than by rows
    pair = np.unique(e[:, 0] * n + e[:, 1])
    return np.stack([pair // n, pair % n], axis=1)
