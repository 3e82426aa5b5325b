"""Reversible normalization of coordinates to the unit box (an estimator in the scikit-learn sense)."""
from __future__ import annotations

import numpy as np

from geoop.errors import NotFittedError


class UnitBoxTransform:
    """Isotropic map `x -> (x - center_) / scale_` that puts the fitted points in `[-1, 1]^d` (default) or
    `[0, 1]^d` with their aspect ratio kept. Distances scale by `1 / scale_`; normals are unchanged.

    Args:
        target: "symmetric" for `[-1, 1]^d`, "unit" for `[0, 1]^d`.
        margin: relative padding kept free on each side (0.05 leaves the outer 5% empty).
    """

    def __init__(self, target: str = "symmetric", margin: float = 0.0):
        if target not in ("symmetric", "unit"):
            raise ValueError(f"target must be 'symmetric' or 'unit', got {target!r}")
        self.target = target
        self.margin = margin

    def fit(self, points: np.ndarray) -> "UnitBoxTransform":
        """Learn `center_` (d,) and `scale_` from `points (N, d)`."""
        points = np.asarray(points, dtype=np.float64)
        lo, hi = points.min(axis=0), points.max(axis=0)
        half = float((hi - lo).max()) / 2 or 1.0
        span = 1.0 if self.target == "symmetric" else 0.5
        self.center_ = (lo + hi) / 2
        self.scale_ = half * (1 + 2 * self.margin) / span
        self.offset_ = 0.0 if self.target == "symmetric" else 0.5
        return self

    def _check(self) -> None:
        if not hasattr(self, "scale_"):
            raise NotFittedError("UnitBoxTransform is not fitted", fix="call .fit(points) first")

    def transform(self, points: np.ndarray) -> np.ndarray:
        """`(N, d)` -> `(N, d)` in the unit box."""
        self._check()
        return (np.asarray(points) - self.center_) / self.scale_ + self.offset_

    def inverse_transform(self, points: np.ndarray) -> np.ndarray:
        """Back to the original coordinates."""
        self._check()
        return (np.asarray(points) - self.offset_) * self.scale_ + self.center_

    def fit_transform(self, points: np.ndarray) -> np.ndarray:
        return self.fit(points).transform(points)

    def state_dict(self) -> dict:
        """JSON-serialisable state (for checkpoints and dataset manifests)."""
        self._check()
        return {"target": self.target, "margin": self.margin, "center": self.center_.tolist(),
                "scale": self.scale_, "offset": self.offset_}

    @classmethod
    def from_state_dict(cls, state: dict) -> "UnitBoxTransform":
        t = cls(state["target"], state["margin"])
        t.center_ = np.asarray(state["center"], dtype=np.float64)
        t.scale_ = float(state["scale"])
        t.offset_ = float(state["offset"])
        return t
