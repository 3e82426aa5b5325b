"""Relative L2 errors per sample and field, as integrals (quadrature-weighted), over where targets are defined."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from geoop.graph.scatter import scatter_sum


def field_errors(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                 batch: torch.Tensor, n_samples: int, fields: Mapping[str, slice]) -> dict[str, torch.Tensor]:
    """`{field: (B,)}` relative L2 errors `||pred - y|| / ||y||` with `||v||^2 = sum_i w_i m_i |v_i|^2`.

    pred, y `(N, C)`; mask `(N, C)` bool; weight `(N,)`; batch `(N,)` sample ids; fields: channels per field."""
    w = weight[:, None] * mask.to(pred.dtype)
    diff = scatter_sum((pred - y) ** 2 * w, batch, n_samples)  # (B, C)
    ref = scatter_sum(y.to(pred.dtype) ** 2 * w, batch, n_samples)
    out = {}
    for name, s in fields.items():
        num, den = diff[:, s].sum(1), ref[:, s].sum(1)
        out[name] = torch.sqrt(num / den.clamp_min(1e-12 * float(den.mean().clamp_min(1e-30))))
    return out


def max_errors(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
               fields: Mapping[str, slice]) -> dict[str, float]:
    """`{field: max_i |pred_i - y_i|}` (Euclidean over a vector field's components) where targets are defined."""
    out = {}
    for name, s in fields.items():
        err = ((pred[:, s] - y[:, s]) ** 2 * mask[:, s]).sum(1).sqrt()
        out[name] = float(err.max()) if len(err) else 0.0
    return out
