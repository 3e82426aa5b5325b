"""The one definition of squared distance that every neighbor-search backend filters with: per-axis
differences squared and summed in axis order, so that all backends decide a pair at distance exactly r alike."""
from __future__ import annotations

from collections.abc import Iterable

import torch


def _accumulate(differences: Iterable[torch.Tensor]) -> torch.Tensor:
    out = None
    for d in differences:
        out = d * d if out is None else out + d * d
    return out


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`sum_k (a_k - b_k)^2` over the last axis of broadcastable `a`, `b` `(..., d)`."""
    return _accumulate(a[..., k] - b[..., k] for k in range(a.shape[-1]))


def pair_squared_distance(points: torch.Tensor, queries: torch.Tensor, src: torch.Tensor, dst: torch.Tensor
                          ) -> torch.Tensor:
    """`(E,)` squared distances between `points[src]` and `queries[dst]` (`(N, d)`, `(M, d)`, int64 `(E,)`)."""
    diff = (points.index_select(0, src) - queries.index_select(0, dst)).T.contiguous()  # (d, E)
    return _accumulate(diff)
