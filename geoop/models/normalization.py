"""`Normalizer`: physical coordinates and fields <-> what a model sees, with statistics of the training split
(fitted by `geoop.training.normalization.fit_normalization`). Its buffers travel in the state dict, so a
checkpoint carries them with the weights."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from geoop.models.fields import Fields

#: the statistics `fit_normalization` returns and checkpoints store (as "normalization")
STATISTICS = ("center", "scale", "x_mean", "x_std", "y_mean", "y_std", "y_low", "y_high")


class Normalizer(nn.Module):
    """Coordinates: `x_model = (x - center) / scale`, isotropic, into the training data's `[-1, 1]^d` box.
    Inputs: `(x - x_mean) / x_std` per channel. Outputs: `y = (out * y_std + y_mean) * m(x) + lift(x)`, where
    `m` is 1 except on scaled targets (|input|^k, see `Fields.scale_channels`) and `lift` adds the input a
    lifted target is predicted from (see `Fields.lift_channels`); `x` are the inputs at the query points.

    Args:
        fields: the run's `Fields`. center `(d,)`, scale: the coordinate map. x_mean, x_std `(C_in,)`, y_mean,
        y_std `(C_out,)`. y_low, y_high `(C_out,)`: the 1st and 99th percentiles of the training targets
        (for errors clipped to the training range; default: unbounded).
    """

    def __init__(self, fields: Fields, center: Sequence[float], scale: float, x_mean: Sequence[float],
                 x_std: Sequence[float], y_mean: Sequence[float], y_std: Sequence[float],
                 y_low: Sequence[float] | None = None, y_high: Sequence[float] | None = None):
        super().__init__()
        as_t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float32).reshape(-1))  # noqa: E731
        inf = [float("inf")] * len(y_mean)
        for name, value in (("center", center), ("scale", [scale]), ("x_mean", x_mean), ("x_std", x_std),
                            ("y_mean", y_mean), ("y_std", y_std),
                            ("y_low", [-v for v in inf] if y_low is None else y_low),
                            ("y_high", inf if y_high is None else y_high)):
            self.register_buffer(name, as_t(value))
        targets, sources = fields.lift_channels()
        self.register_buffer("lift_targets", torch.tensor(targets, dtype=torch.int64), persistent=False)
        self.register_buffer("lift_sources", torch.tensor(sources, dtype=torch.int64), persistent=False)
        self.scales = fields.scale_channels()

    @classmethod
    def from_statistics(cls, fields: Fields, statistics: Mapping[str, Any]) -> Normalizer:
        """From `statistics()`'s dict (older checkpoints lack the percentiles: unbounded)."""
        return cls(fields, **{k: statistics.get(k) for k in STATISTICS})

    def statistics(self) -> dict[str, Any]:
        """JSON-serialisable statistics (what `from_statistics` takes)."""
        out: dict[str, Any] = {k: getattr(self, k).tolist() for k in STATISTICS if k != "scale"}
        return {**out, "scale": float(self.scale)}

    @property
    def dim(self) -> int:
        return int(self.center.numel())

    @property
    def out_channels(self) -> int:
        return int(self.y_mean.numel())

    @property
    def uses_query_inputs(self) -> bool:
        """Whether outputs depend on the input fields at the queries (lifted or scaled targets)."""
        return bool(len(self.lift_targets) or self.scales)

    def to_model_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """`(N, d)` physical -> `(N, d)` model coordinates."""
        return (points.float().to(self.center.device) - self.center) / self.scale

    def inputs(self, x: torch.Tensor) -> torch.Tensor | None:
        """`(N, C_in)` physical inputs -> standardised ones (None for a model without input channels)."""
        return (x - self.x_mean) / self.x_std if x.shape[1] else None

    def outputs(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """`(M, C_out)` model outputs -> physical values, given the inputs `x (M, C_in)` at the same points."""
        out = out.float() * self.y_std + self.y_mean
        if self.scales:
            out = out * target_multiplier(x.float(), self.scales, out.shape[1])
        if len(self.lift_targets):
            out = out.index_add(1, self.lift_targets, x[:, self.lift_sources].float())
        return out

    def spread(self, log_variance: torch.Tensor | None, x: torch.Tensor, rows: int) -> torch.Tensor:
        """`(M, C_out)` a per-point scale in physical units at `rows` = M points: `sigma = exp(s / 2) y_std m(x)`
        from a model's log-variance output `s` in standardised units (clamped to [-20, 10]), or `y_std m(x)`
        without one (the constant-width scale conformal bands fall back to); `x (M, C_in)`: the inputs at the
        points, read only for scaled targets."""
        unit = torch.ones(rows, self.out_channels, device=self.y_std.device) if log_variance is None else \
            torch.exp(0.5 * log_variance.float().clamp(-20.0, 10.0))
        out = unit * self.y_std
        if self.scales:
            out = out * target_multiplier(x.float(), self.scales, out.shape[1])
        return out


def target_multiplier(x: torch.Tensor, scales: list[tuple[list[int], list[int], float]], channels: int
                      ) -> torch.Tensor:
    """`(N, C_out)`: |x[:, input channels]|^k on the channels of each scaled target (`Fields.scale_channels`),
    1 elsewhere; inputs `x (N, C_in)` in physical units. A zero magnitude counts as 1e-12 of the largest."""
    factor = torch.ones(len(x), channels, dtype=x.dtype, device=x.device)
    for targets, sources, k in scales:
        size = x[:, sources].norm(dim=1)
        size = size.clamp_min(1e-12 * float(size.max().clamp_min(1e-30))) if len(size) else size
        factor[:, targets] = size[:, None] ** k
    return factor
