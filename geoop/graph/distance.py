"""The one definition of squared distance that every neighbor-search backend filters with."""
from __future__ import annotations

import torch


def squared_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """`sum_k (a_k - b_k)^2` over the last axis (broadcasting), summed in a fixed order, so that every backend
    decides a pair at distance exactly r the same way."""
    d = a[..., 0] - b[..., 0]
    out = d * d
    for k in range(1, a.shape[-1]):
        d = a[..., k] - b[..., k]
        out = out + d * d
    return out
