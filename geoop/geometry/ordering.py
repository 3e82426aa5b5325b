"""Spatial ordering: sorting points along a Morton (Z-order) curve keeps neighbors close in memory, which
makes every later neighbor search and scatter faster."""
from __future__ import annotations

import numpy as np


def _spread_bits(v: np.ndarray, dim: int) -> np.ndarray:
    """Insert `dim - 1` zero bits between the low bits of each integer in `v` (uint64)."""
    out = np.zeros_like(v)
    bits = 64 // dim
    for b in range(bits):
        out |= ((v >> np.uint64(b)) & np.uint64(1)) << np.uint64(b * dim)
    return out


def morton_order(points: np.ndarray) -> np.ndarray:
    """Permutation `(N,)` that sorts `points (N, d)` along a Z-order curve over their bounding box (stable)."""
    points = np.asarray(points, dtype=np.float64)
    n, dim = points.shape
    if n < 2:
        return np.arange(n)
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = float((hi - lo).max()) or 1.0
    levels = (1 << (64 // dim)) - 1
    q = np.floor((points - lo) / extent * levels).clip(0, levels).astype(np.uint64)
    code = np.zeros(n, dtype=np.uint64)
    for axis in range(dim):
        code |= _spread_bits(q[:, axis], dim) << np.uint64(axis)
    return np.argsort(code, kind="stable")
