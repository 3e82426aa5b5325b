"""K-D tree domain decomposition of a non-uniform point cloud into near-uniform boxes (after NUNO)."""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from geoop.errors import GeoopError, NotFittedError

log = logging.getLogger(__name__)


def histogram_shape(extent: np.ndarray, n_blocks: int) -> np.ndarray:
    """Cells per axis `(d,)`: near-cubic cells, about `n_blocks` in all, at least 1 per axis."""
    extent = np.maximum(extent, extent.max() * 1e-9 + 1e-300)
    k0 = (n_blocks * np.prod(extent[0] / extent[1:])) ** (1 / len(extent))
    return np.maximum(1, np.round(k0 * extent / extent[0])).astype(int)


def uniformity_kl(points: np.ndarray, n_blocks: int, lower: np.ndarray | None = None,
                  upper: np.ndarray | None = None, shape: np.ndarray | None = None) -> float:
    """KL divergence of the points' histogram from uniform, over `shape` cells of the box [lower, upper]
    (default: the points' tight box cut into about `n_blocks` near-cubic cells)."""
    lo = points.min(0) if lower is None else lower
    hi = points.max(0) if upper is None else upper
    shape = histogram_shape(hi - lo, n_blocks) if shape is None else shape
    cell = np.floor((points - lo) / np.maximum(hi - lo, 1e-300) * shape).astype(int).clip(0, shape - 1)
    counts = np.bincount(np.ravel_multi_index(cell.T, shape), minlength=int(np.prod(shape)))
    p = counts[counts > 0] / len(points)
    return float((p * np.log(p * np.prod(shape))).sum())


def _fewest(left: np.ndarray, samples: np.ndarray | None, n_samples: int) -> int:
    """The fewest points any one sample has on either side of a cut (`left`: `(N,)` bool)."""
    if samples is None:
        return int(min(left.sum(), len(left) - left.sum()))
    on_left = np.bincount(samples[left], minlength=n_samples)
    return int(min(on_left.min(), (np.bincount(samples, minlength=n_samples) - on_left).min()))


def _best_cut(points: np.ndarray, n_blocks: int, min_points: int, samples: np.ndarray | None = None,
              n_samples: int = 1) -> tuple[int, float, float] | None:
    """(axis, threshold, gain) of the histogram-edge cut on the longest axis whose point fractions differ most
    from its volume fractions: gain = sum_sides f log(f / v), the KL the cut explains. A cut is valid when every
    sample (`samples (N,)`: the sample of each point; None: one sample) keeps `min_points` on each side. None
    if no cut is valid."""
    lo, hi = points.min(0), points.max(0)
    axis = int(np.argmax(hi - lo))
    k = histogram_shape(hi - lo, n_blocks)[axis]
    best = None
    for m in range(1, k):
        b = lo[axis] + m * (hi[axis] - lo[axis]) / k
        goes_left = points[:, axis] <= b
        n_left = int(goes_left.sum())
        if _fewest(goes_left, samples, n_samples) < min_points:
            continue
        f, v = np.array([n_left, len(points) - n_left]) / len(points), np.array([m, k - m]) / k
        gain = float((f * np.log(f / v)).sum())
        if best is None or gain > best[2]:
            best = (axis, float(b), gain)
    return best


class KDTreeDecomposition:
    """Split a cloud into `n_subdomains` boxes that are each close to uniformly filled.

    As in NUNO, the leaf with the largest `points x KL(histogram || uniform)` is split next, along its longest
    axis, at an edge of its histogram (about `n_blocks` near-cubic cells over its tight box). The edge chosen
    maximises `sum_sides f log(f / v)` (point fraction f against volume fraction v): by the chain rule of KL
    divergence this is exactly how much of the leaf's KL the cut explains, so the children's KL measured on the
    parent's cells never exceeds the parent's (NUNO re-bins each child before comparing, which can rise).
    A leaf is final when every cut leaves a child with fewer than `min_points` points of some sample.

    Fitted: `leaf_lower_`, `leaf_upper_` `(L, d)` tight boxes; `leaf_count_`, `leaf_kl_` `(L,)`; the tree as
    `node_axis_`, `node_threshold_`, `node_left_`, `node_right_`, `node_leaf_` (leaf id, or -1 inside).
    Points with `x[axis] <= threshold` go left.
    """

    def __init__(self, n_subdomains: int = 8, n_blocks: int = 8, min_points: int | None = None, max_depth: int = 24):
        self.n_subdomains, self.n_blocks, self.max_depth = n_subdomains, n_blocks, max_depth
        self.min_points = min_points if min_points is not None else n_blocks

    def fit(self, points: np.ndarray, n_samples: int = 1, sample_index: np.ndarray | None = None
            ) -> KDTreeDecomposition:
        """Grow the tree on `points (N, d)`: one geometry, or the union of `n_samples` samples' points (leaf
        grids are then sized to the points one sample has in each leaf, `leaf_count_ / n_samples_`).
        `sample_index (N,)`: the sample of each point, so that every sample keeps `min_points` in every leaf
        (without it the union's count is held to `min_points x n_samples`)."""
        points = np.asarray(points, dtype=np.float64)
        self.n_samples_ = np.asarray(n_samples)
        samples = None if sample_index is None else np.asarray(sample_index, dtype=np.int64)
        minimum = self.min_points * (n_samples if samples is None else 1)

        def cut(idx: np.ndarray) -> tuple[int, float, float] | None:
            return _best_cut(points[idx], self.n_blocks, minimum, None if samples is None else samples[idx],
                             n_samples)

        if len(points) < 2 * self.min_points:
            raise GeoopError(f"{len(points)} points are too few to decompose (min_points={self.min_points})")
        axis, threshold, left, right, depth = [-1], [0.0], [-1], [-1], [0]
        members = {0: np.arange(len(points))}
        kls = {0: uniformity_kl(points, self.n_blocks)}
        cuts = {0: cut(np.arange(len(points)))}
        while len(members) < self.n_subdomains:
            alive = [n for n in members if cuts[n] is not None and depth[n] < self.max_depth]
            if not alive:
                log.warning("K-D tree stopped at %d of %d subdomains: no leaf can be cut", len(members),
                            self.n_subdomains)
                break
            node = max(alive, key=lambda n: len(members[n]) * kls[n])
            (a, b, _), idx = cuts.pop(node), members.pop(node)
            goes_left = points[idx, a] <= b
            axis[node], threshold[node] = a, b
            for side, child_idx in ((left, idx[goes_left]), (right, idx[~goes_left])):
                child = len(axis)
                axis.append(-1), threshold.append(0.0), left.append(-1), right.append(-1)
                depth.append(depth[node] + 1)
                side[node] = child
                members[child] = child_idx
                kls[child] = uniformity_kl(points[child_idx], self.n_blocks)
                cuts[child] = cut(child_idx)
        leaves = sorted(members)
        self.node_axis_, self.node_threshold_ = np.array(axis), np.array(threshold)
        self.node_left_, self.node_right_ = np.array(left), np.array(right)
        self.node_leaf_ = np.full(len(axis), -1)
        self.node_leaf_[leaves] = np.arange(len(leaves))
        self.leaf_lower_ = np.stack([points[members[n]].min(0) for n in leaves])
        self.leaf_upper_ = np.stack([points[members[n]].max(0) for n in leaves])
        self.leaf_count_ = np.array([len(members[n]) for n in leaves])
        self.leaf_kl_ = np.array([kls[n] for n in leaves])
        return self

    def _check(self) -> None:
        if not hasattr(self, "node_axis_"):
            raise NotFittedError("KDTreeDecomposition is not fitted", fix="call .fit(points) or .load(path)")

    @property
    def n_leaves(self) -> int:
        self._check()
        return len(self.leaf_count_)

    def cell_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """`(L, d)` lower and upper corners of the leaves' tree cells: the root box (the fitted points' box)
        cut at the thresholds, so that the cells tile it (the tight boxes `leaf_lower_`/`leaf_upper_` leave
        gaps between them)."""
        self._check()
        lower = np.empty((len(self.node_axis_), self.leaf_lower_.shape[1]))
        upper = np.empty_like(lower)
        lower[0], upper[0] = self.leaf_lower_.min(0), self.leaf_upper_.max(0)
        for node in range(len(self.node_axis_)):  # children come after their parent
            if self.node_leaf_[node] < 0:
                a, b = self.node_axis_[node], self.node_threshold_[node]
                for child in (self.node_left_[node], self.node_right_[node]):
                    lower[child], upper[child] = lower[node], upper[node]
                upper[self.node_left_[node], a] = lower[self.node_right_[node], a] = b
        leaves = np.flatnonzero(self.node_leaf_ >= 0)[np.argsort(self.node_leaf_[self.node_leaf_ >= 0])]
        return lower[leaves], upper[leaves]

    def assign(self, points: np.ndarray) -> np.ndarray:
        """Leaf id `(M,)` of any points `(M, d)` by the tree's cuts (points outside every box get one too)."""
        self._check()
        points = np.asarray(points, dtype=np.float64)
        node = np.zeros(len(points), dtype=int)
        while True:
            inner = self.node_leaf_[node] < 0
            if not inner.any():
                return self.node_leaf_[node]
            n = node[inner]
            go_left = points[inner, self.node_axis_[n]] <= self.node_threshold_[n]
            node[inner] = np.where(go_left, self.node_left_[n], self.node_right_[n])

    def state_dict(self) -> dict:
        """JSON-serialisable parameters and fitted state."""
        self._check()
        state = {k: v.tolist() for k, v in vars(self).items() if k.endswith("_")}
        state.update(n_subdomains=self.n_subdomains, n_blocks=self.n_blocks, min_points=self.min_points,
                     max_depth=self.max_depth)
        return state

    @classmethod
    def from_state_dict(cls, state: dict) -> KDTreeDecomposition:
        tree = cls(state["n_subdomains"], state["n_blocks"], state["min_points"], state["max_depth"])
        tree.n_samples_ = np.asarray(1)
        for k, v in state.items():
            if k.endswith("_"):
                setattr(tree, k, np.asarray(v))
        return tree

    def save(self, path: str | Path) -> Path:
        """Write the fitted tree as JSON, atomically."""
        from geoop.data.manifest import write_json_atomic

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.state_dict())
        return path

    @classmethod
    def load(cls, path: str | Path) -> KDTreeDecomposition:
        return cls.from_state_dict(json.loads(Path(path).read_text()))

    def plot(self, path: str | Path, points: np.ndarray | None = None) -> Path:
        """PNG of the leaf boxes (the x-y projection in 3D), with `points` colored by leaf if given."""
        from matplotlib import colormaps
        from matplotlib.figure import Figure
        from matplotlib.patches import Rectangle

        self._check()
        fig = Figure(figsize=(6, 5))
        ax = fig.add_subplot()
        colors = colormaps["tab20"](np.arange(self.n_leaves) % 20)
        if points is not None:
            ax.scatter(points[:, 0], points[:, 1], s=1, c=colors[self.assign(points)])
        for k, (lo, hi) in enumerate(zip(self.leaf_lower_, self.leaf_upper_, strict=True)):
            ax.add_patch(Rectangle(tuple(lo[:2]), *(hi - lo)[:2], fill=False, ec=colors[k], lw=1.5))
        ax.set_aspect("equal")
        ax.autoscale_view()
        ax.set_title(f"{self.n_leaves} subdomains")
        fig.savefig(path, dpi=110)
        return Path(path)
