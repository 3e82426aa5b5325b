"""Which samples share a batch. Samples are dealt once into `n_shards` shards of about equal point count (one
per process in distributed training, each of which builds caches only for its own samples); every epoch each
shard is reshuffled from (seed, epoch, shard) and cut into local batches, and step s joins the shards' s-th
local batches into one global batch. The plan depends on the number of shards, not of processes, so one
process with `shards=2` replays a 2-process run exactly, and a resumed run replays the killed one."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def make_batches(sizes: Sequence[int], batch_size: int, max_points: int | None = None, seed: int = 0,
                 epoch: int = 0, shuffle: bool = True, stream: int = 0) -> list[list[int]]:
    """Batches of sample positions `0..len(sizes)-1`.

    sizes: points per sample. batch_size: samples per batch, or the most samples per batch when `max_points`
    is set, in which case samples are packed in shuffled order until the next would pass `max_points` (a
    sample larger than the budget gets a batch of its own). The order comes from (seed, epoch, stream)."""
    order = (np.random.default_rng([seed, epoch, stream]).permutation(len(sizes)) if shuffle
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


def shard_samples(sizes: Sequence[int], n_shards: int) -> list[list[int]]:
    """Deal sample positions into `n_shards` shards of about equal total points (largest first, each to the
    lightest shard so far; ties by position, so every process computes the same shards)."""
    shards: list[list[int]] = [[] for _ in range(n_shards)]
    load = [0] * n_shards
    for i in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        k = min(range(n_shards), key=lambda k: (load[k], k))
        shards[k].append(i)
        load[k] += sizes[i]
    return [sorted(s) for s in shards]


def batch_plan(sizes: Sequence[int], batch_size: int, max_points: int | None, seed: int, epoch: int,
               n_shards: int = 1) -> list[list[list[int]]]:
    """`plan[step][shard]`: the sample positions each shard contributes to each step of an epoch (a shard
    whose local batches run out contributes nothing to the last steps). `batch_size` and `max_points` apply
    per shard."""
    local = []
    for k, shard in enumerate(shard_samples(sizes, n_shards)):
        batches = make_batches([sizes[i] for i in shard], batch_size, max_points, seed, epoch, stream=k)
        local.append([[shard[j] for j in b] for b in batches])
    steps = max((len(b) for b in local), default=0)
    return [[b[s] if s < len(b) else [] for b in local] for s in range(steps)]
