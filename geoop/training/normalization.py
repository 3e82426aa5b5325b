"""Fitting a `Normalizer` on a training split: the coordinate box and per-channel statistics of its inputs and
targets (see `geoop.models.normalization`)."""
from __future__ import annotations

from typing import Any

import torch

from geoop.data.dataset import SimulationDataset
from geoop.geometry.normalize import UnitBoxTransform
from geoop.models.fields import Fields
from geoop.models.normalization import target_multiplier


def _safe_std(s: torch.Tensor) -> torch.Tensor:
    """Standard deviations with constant channels (std ~ 0) mapped to 1, so they pass through unscaled."""
    if not len(s):
        return s
    return torch.where(s > 1e-12 * s.max().clamp_min(1e-300), s, torch.ones_like(s))


def fit_normalization(dataset: SimulationDataset, fields: Fields | None = None) -> dict[str, Any]:
    """Coordinate box and per-channel mean/std of inputs and (where defined) targets over `dataset`. Boundary
    data and their masks are only scaled (mean 0, root mean square 1 where defined), so that "no boundary
    data" stays exactly zero for the models; spatial vectors (inputs of d components) get one scale for all
    components and no shift, so they keep their direction. Targets also get their 1st and 99th percentiles
    (for errors clipped to the range of the training data, which tame the suction spikes of Cp). The targets
    `fields` lifts are standardised as what the model learns: their difference from the inputs they are
    lifted by (`Fields.lift_channels`), divided by an input's magnitude for scaled targets
    (`Fields.scale_channels`). Returns the keyword arguments of `Normalizer` (less `fields`)."""
    lift = fields.lift_channels() if fields is not None else ([], [])
    scales = fields.scale_channels() if fields is not None else []
    corners, xs, ys, masks = [], [], [], []
    for i in range(len(dataset)):
        d = dataset[i]
        corners += [d.pos.min(0).values, d.pos.max(0).values]
        xs.append(d.x.double())
        ys.append(d.y.double())
        masks.append(d.y_mask)
    box = UnitBoxTransform().fit(torch.stack(corners).double().numpy())
    x, y, m = torch.cat(xs), torch.cat(ys), torch.cat(masks).double()
    count = m.sum(0).clamp_min(1)
    learned = y.clone()
    learned[:, lift[0]] -= x[:, lift[1]]
    if scales:
        learned /= target_multiplier(x, list(scales), y.shape[1])
    y_mean = (learned * m).sum(0) / count
    y_std = (((learned - y_mean) ** 2 * m).sum(0) / count).sqrt()
    defined = [y[m[:, c] > 0, c] for c in range(y.shape[1])]
    y_low = [float(torch.quantile(v, 0.01)) if len(v) else float("-inf") for v in defined]
    y_high = [float(torch.quantile(v, 0.99)) if len(v) else float("inf") for v in defined]
    x_mean = x.mean(0)
    x_std = x.std(0, unbiased=False) if x.shape[1] else x.new_zeros(0)
    values, types, _ = dataset.layout.roles()
    for c in values:
        on = x[:, c] != 0
        x_mean[c], x_std[c] = 0.0, x[on, c].pow(2).mean().sqrt() if bool(on.any()) else 1.0
    for c in types:
        x_mean[c], x_std[c] = 0.0, 1.0
    dim = int(dataset.manifest.dim)
    for c in dataset.layout.vector_starts(dim):  # one scale for all components, no shift:
        block = x[:, c:c + dim]                                      # directions (and n.U) survive scaling
        x_mean[c:c + dim], x_std[c:c + dim] = 0.0, block.pow(2).sum(1).mean().sqrt()
    return {"center": box.center_.tolist(), "scale": float(box.scale_), "x_mean": x_mean.tolist(),
            "x_std": _safe_std(x_std).tolist(), "y_mean": y_mean.tolist(),
            "y_std": _safe_std(y_std).tolist(), "y_low": y_low, "y_high": y_high}
