"""Which samples share a batch: shuffled per epoch from a seed (so a resumed run replays the same batches),
either a fixed number of samples or packed up to a point budget so batches cost about the same."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def make_batches(sizes: Sequence[int], batch_size: int, max_points: int | None = None, seed: int = 0,
                 epoch: int = 0, shuffle: bool = True) -> list[list[int]]:
    """Batches of sample positions `0..len(sizes)-1`.

    sizes: points per sample. batch_size: samples per batch, or the most samples per batch when `max_points`
    is set, in which case samples are packed in shuffled order until the next would pass `max_points` (a
    sample larger than the budget gets a batch of its own)."""
    order = (np.random.default_rng([seed, epoch]).permutation(len(sizes)) if shuffle
             else np.arange(len(sizes)))
    if max_points is None:
        return [order[i:i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    current: list[int] = []
    points = 0
    for i in order.tolist():
        if current and (points + sizes[i] > max_points or len(current) == batch_size):
            batches.append(current)
            current, points = [], 0
        current.append(i)
        points += sizes[i]
    if current:
        batches.append(current)
    return batches
