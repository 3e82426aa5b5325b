"""Design spaces: the parameters a family draws for each sample (an airfoil's section, angle of attack and
Reynolds number), drawn on their own so that a caller can choose which designs get simulated (see
`geoop.training.selection`), and mapped to the unit cube for distances between designs."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DesignSpace:
    """`draw(rng) -> {parameter: value}`: a random design, as the family's `make(rng, design=...)` takes it;
    `ranges` {parameter: (low, high)}: the span of each parameter, which `coordinates` maps to [0, 1]."""

    draw: Callable[[np.random.Generator], dict[str, float]]
    ranges: Mapping[str, tuple[float, float]]

    def coordinates(self, designs: Sequence[Mapping[str, float]]) -> np.ndarray:
        """`(S, P)` the designs in the unit cube: (value - low) / (high - low) per parameter of `ranges`."""
        low = np.array([lo for lo, _ in self.ranges.values()])
        span = np.array([hi - lo for lo, hi in self.ranges.values()])
        values = np.array([[float(d[k]) for k in self.ranges] for d in designs]).reshape(-1, len(self.ranges))
        return (values - low) / np.where(span > 0, span, 1.0)

    def draw_many(self, seed: Sequence[int], n: int) -> list[dict[str, float]]:
        """`n` designs from the random stream `seed` (a list of integers: the same list, the same designs)."""
        rng = np.random.default_rng(np.random.SeedSequence(list(seed)))
        return [self.draw(rng) for _ in range(n)]
