"""Relative L2 errors per sample and field, as integrals (quadrature-weighted), over where targets are defined;
and their Huber-robust variant for training on fields with spikes."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from geoop.graph.scatter import scatter_sum


def field_errors(pred: torch.Tensor, y: torch.Tensor, mask: torch.Tensor, weight: torch.Tensor,
                 batch: torch.Tensor, n_samples: int, fields: Mapping[str, slice],
                 huber: float | None = None) -> dict[str, torch.Tensor]:
    """`{field: (B,)}` relative L2 errors `||pred - y|| / ||y||` with `||v||^2 = sum_i w_i m_i |v_i|^2`.

    pred, y `(N, C)`; mask `(N, C)` bool; weight `(N,)` quadrature weights, or `(N, C)` per target channel
    (e.g. surface-area weights for a field that lives on a boundary); batch `(N,)` sample ids; fields:
    channels per field. `huber`: replace the squared residual r^2 by Huber's `r^2` for `|r| <= delta s` and
    `2 delta s |r| - (delta s)^2` beyond, with delta = `huber` and s the sample's RMS of the channel, so that a
    few large residuals (spikes) pull linearly, not quadratically; without spikes it equals the relative L2."""
    w = (weight if weight.dim() == 2 else weight[:, None]) * mask.to(pred.dtype)
    ref = scatter_sum(y.to(pred.dtype) ** 2 * w, batch, n_samples)  # (B, C)
    residual = pred - y
    if huber is None:
        penalty = residual**2
    else:
        measure = scatter_sum(w, batch, n_samples).clamp_min(1e-30)
        cut = huber * (ref / measure).sqrt().detach()[batch]  # (N, C): delta times the sample's RMS
        size = residual.abs()
        penalty = torch.where(size <= cut, residual**2, 2 * cut * size - cut**2)
    diff = scatter_sum(penalty * w, batch, n_samples)
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


def gaussian_nll(pred: torch.Tensor, scale: torch.Tensor, y: torch.Tensor, mask: torch.Tensor,
                 weight: torch.Tensor, batch: torch.Tensor, n_samples: int, fields: Mapping[str, slice]
                 ) -> dict[str, torch.Tensor]:
    """`{field: (B,)}` the Gaussian negative log-likelihood of the targets under N(pred, scale^2) per point,
    `log(sigma) + (y - pred)^2 / (2 sigma^2)`, averaged with the quadrature weights over where the targets are
    defined and over the field's channels. It trains a per-point scale (a variance head); pass `pred` detached
    so that it does not pull on the prediction. Shapes as in `field_errors`; scale `(N, C)` > 0."""
    w = (weight if weight.dim() == 2 else weight[:, None]) * mask.to(scale.dtype)
    sigma = scale.clamp_min(1e-12)
    nll = torch.log(sigma) + 0.5 * ((y.to(sigma.dtype) - pred) / sigma) ** 2
    total = scatter_sum(nll * w, batch, n_samples)
    measure = scatter_sum(w, batch, n_samples).clamp_min(1e-30)
    return {name: (total[:, s] / measure[:, s]).mean(1) for name, s in fields.items()}
