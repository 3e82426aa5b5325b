"""How unlike the training geometries a new one is, without the model: a descriptor of each geometry, a nearest-
neighbour novelty score against the training set, and a conformal p-value calibrated on the validation split.

Descriptor (a vector per geometry, in the training data's normalised box `[-1, 1]^d`): the distance to the
geometry's boundary (its body, where the run has one) on a coarse grid over the box, the quantiles of the
nodes' nearest-neighbour spacing and their number (both as logs), and each input field's range. Novelty:
the mean distance to the `k` nearest training descriptors after standardising each component over the
training set. p-value of a new geometry with score s: `(1 + #{reference scores >= s}) / (n + 1)`, the
reference scores being those of the validation geometries and of every training geometry against the other
training ones (leave one out: a few dozen validation geometries alone cannot give a p-value below 1/(n + 1)).
Under exchangeability it is uniform, so flagging p < alpha flags about a fraction alpha of in-distribution
geometries and, ideally, every far-out one."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from geoop.geometry.geometry import Geometry
from geoop.geometry.sdf import distance_function

#: grid points per axis of the distance part of the descriptor (8^2 in 2D, 6^3 in 3D)
GRID = {2: 8, 3: 6}
#: spacing quantiles of the density part
SPACING_QUANTILES = (0.05, 0.5, 0.95)
#: training neighbours the novelty score averages over
NEIGHBOURS = 3


def descriptor(geometry: Geometry, center: np.ndarray, scale: float, inputs: Sequence[str] = (),
               body: str | None = None) -> np.ndarray:
    """`(D,)` the descriptor of `geometry` in the box mapped by `(p - center) / scale`; `inputs`: the point
    fields whose ranges (min, mean, max per component) are part of it; `body`: the 0/1 point field of a body
    whose distance is taken (None: the geometry's boundary)."""
    d = geometry.dim
    axis = np.linspace(-0.9, 0.9, GRID[d])
    grid = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), -1).reshape(-1, d)
    distance = distance_function(geometry, body)
    parts = [np.asarray(distance(grid * scale + center), dtype=np.float64) / scale]
    points = (geometry.points - center) / scale
    spacing, _ = cKDTree(points).query(points, k=2)
    gaps = np.maximum(spacing[:, 1], 1e-12)
    parts.append(np.log(np.quantile(gaps, SPACING_QUANTILES)))
    parts.append([np.log(len(points))])
    for name in inputs:
        v = np.asarray(geometry.point_data[name], dtype=np.float64).reshape(len(points), -1)
        parts.append(np.concatenate([v.min(0), v.mean(0), v.max(0)]))
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts])


@dataclass(frozen=True)
class NoveltyModel:
    """Training descriptors `(S, D)`, their per-component mean and spread, and the sorted reference novelty
    scores (for p-values). Fit with `fit`; `score` and `p_value` answer for new descriptors."""

    train: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    calibration: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray, validation: np.ndarray) -> NoveltyModel:
        """From the descriptors of the training geometries and of the validation ones (never the test's)."""
        train = np.asarray(train, dtype=np.float64)
        mean, std = train.mean(0), train.std(0)
        std = np.where(std > 1e-9 * max(float(std.max(initial=0)), 1e-300), std, 1.0)
        model = cls(train, mean, std, np.zeros(0))
        reference = np.concatenate([model.score(np.asarray(validation, dtype=np.float64)),
                                    model.score(train, leave_one_out=True)])
        return cls(train, mean, std, np.sort(reference))

    def score(self, descriptors: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        """`(M,)` the mean standardised distance of each of `descriptors (M, D)` to its nearest training ones,
        divided by the square root of D (so that scores of descriptors of different sizes compare);
        `leave_one_out`: `descriptors` are the training ones, each scored against the others."""
        z = (np.atleast_2d(descriptors) - self.mean) / self.std
        ref = (self.train - self.mean) / self.std
        skip = 1 if leave_one_out else 0
        k = min(NEIGHBOURS, len(ref) - skip)
        dist, _ = cKDTree(ref).query(z, k=k + skip)
        dist = dist.reshape(len(z), k + skip)[:, skip:]
        return dist.mean(1) / np.sqrt(ref.shape[1])

    def p_value(self, descriptors: np.ndarray) -> np.ndarray:
        """`(M,)` conformal p-values: the share of validation geometries at least as novel (plus one)."""
        s = self.score(descriptors)
        n = len(self.calibration)
        above = n - np.searchsorted(self.calibration, s, side="left")
        return (1.0 + above) / (n + 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train.tolist(), "mean": self.mean.tolist(), "std": self.std.tolist(),
                "calibration": self.calibration.tolist()}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> NoveltyModel:
        return cls(*(np.asarray(raw[k], dtype=np.float64) for k in ("train", "mean", "std", "calibration")))


def input_ranges(geometries: Iterable[Geometry], inputs: Sequence[str]) -> dict[str, tuple[list[float], list[float]]]:
    """{input field: (per-component minimum, maximum) over the `geometries`}, read one geometry at a time."""
    low: dict[str, np.ndarray] = {}
    high: dict[str, np.ndarray] = {}
    for g in geometries:
        for name in inputs:
            v = np.asarray(g.point_data[name], dtype=np.float64).reshape(g.n_points, -1)
            low[name] = np.minimum(low[name], v.min(0)) if name in low else v.min(0)
            high[name] = np.maximum(high[name], v.max(0)) if name in high else v.max(0)
    return {name: (low[name].tolist(), high[name].tolist()) for name in inputs if name in low}


def outside_ranges(geometry: Geometry, ranges: dict[str, tuple[list[float], list[float]]],
                   tolerance: float = 0.05) -> dict[str, float]:
    """{input field: the share of its points outside the training range widened by `tolerance` of its width},
    for the fields with any such point."""
    out = {}
    for name, (low, high) in ranges.items():
        if name not in geometry.point_data:
            continue
        v = np.asarray(geometry.point_data[name], dtype=np.float64).reshape(geometry.n_points, -1)
        low, high = np.asarray(low), np.asarray(high)
        pad = tolerance * np.maximum(high - low, 1e-12 * np.maximum(np.abs(high), 1.0))
        bad = ((v < low - pad) | (v > high + pad)).any(1)
        if bad.any():
            out[name] = float(bad.mean())
    return out
