"""Local geometry at points, for models to see what sets a field: the signed distance with its gradient (the
direction away from the nearest boundary), and the curvature of the boundary at boundary nodes."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial import cKDTree


def distance_and_gradient(sdf_fn: Callable[[np.ndarray], np.ndarray], points: np.ndarray,
                          step: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """`(M,)` signed distance and `(M, d)` its gradient (unit length where the distance is smooth: the outward
    direction of the nearest boundary point, or away from it inside) by central differences of `step`."""
    points = np.asarray(points, dtype=np.float64)
    m, d = points.shape
    offsets = np.concatenate([np.zeros((1, d)), step * np.eye(d), -step * np.eye(d)])  # (1 + 2d, d)
    values = np.asarray(sdf_fn((points[None] + offsets[:, None]).reshape(-1, d)), dtype=np.float64).reshape(-1, m)
    grad = (values[1:d + 1] - values[d + 1:]).T / (2 * step)
    return values[0], grad


def boundary_curvature(points: np.ndarray, boundary: np.ndarray, normals: np.ndarray, k: int = 8) -> np.ndarray:
    """`(N,)` curvature estimate at boundary nodes (0 elsewhere): the mean over the k nearest boundary nodes j
    of `(n_i - n_j) . (x_i - x_j) / |x_i - x_j|^2`, which tends to the sum of principal curvatures (positive
    for a convex body with outward normals; 1/R on a circle, 2/R on a sphere)."""
    out = np.zeros(len(points))
    index = np.flatnonzero(boundary)
    if len(index) < 2:
        return out
    p, n = points[index], normals[index]
    k = min(k, len(index) - 1)
    _, nb = cKDTree(p).query(p, k=k + 1)
    nb = nb[:, 1:]
    gap = p[:, None, :] - p[nb]  # (B, k, d)
    turn = ((n[:, None, :] - n[nb]) * gap).sum(-1) / np.maximum((gap**2).sum(-1), 1e-300)
    out[index] = turn.mean(1) * (points.shape[1] - 1)
    return out
