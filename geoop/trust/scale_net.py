"""`ScaleNet`: a per-point error scale fitted after training on the trained model's residuals over the training
split, so bands can be narrow where the model is sure without touching the model (its predictions are the
same to the bit; the conformal calibration on the validation split then fixes the bands' level).

Features of a point: its model coordinates `(d,)`, the standardised inputs there `(C_in,)` and the model's
standardised outputs there `(C_out,)`. Output: `log sigma` per target channel in standardised units, trained by
the Gaussian negative log-likelihood `log sigma + r^2 / (2 sigma^2)` of the residuals `r`."""
from __future__ import annotations

import torch
from torch import nn


class ScaleNet(nn.Module):
    """An MLP of the standardised features (`center`, `spread`: their training mean and deviation, buffers):
    `(M, in_features) -> (M, out_channels)` log-variances `2 log sigma` (log sigma clamped to [-10, 5])."""

    def __init__(self, in_features: int, out_channels: int, hidden: int = 32):
        super().__init__()
        self.in_features, self.out_channels, self.hidden = in_features, out_channels, hidden
        self.net = nn.Sequential(nn.Linear(in_features, hidden), nn.GELU(), nn.Linear(hidden, hidden), nn.GELU(),
                                 nn.Linear(hidden, out_channels))
        self.register_buffer("center", torch.zeros(in_features))
        self.register_buffer("spread", torch.ones(in_features))

    def log_scale(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features.float() - self.center) / self.spread).clamp(-10.0, 5.0)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return 2.0 * self.log_scale(features)

    def config(self) -> dict[str, int]:
        return {"in_features": self.in_features, "out_channels": self.out_channels, "hidden": self.hidden}


def fit_scale_net(features: torch.Tensor, residuals: torch.Tensor, defined: torch.Tensor, steps: int = 1500,
                  batch: int = 4096, seed: int = 0) -> ScaleNet:
    """A `ScaleNet` fitted to standardised `residuals (K, C)` at `features (K, F)` (only where `defined (K, C)`)
    by Adam on the Gaussian negative log-likelihood, starting from the residuals' overall size."""
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = ScaleNet(features.shape[1], residuals.shape[1])
    rms = ((residuals ** 2 * defined).sum(0) / defined.sum(0).clamp_min(1)).sqrt().clamp_min(1e-6)
    with torch.no_grad():
        net.net[-1].bias.copy_(rms.log())
        net.net[-1].weight.mul_(0.1)
    net.center.copy_(features.mean(0))
    net.spread.copy_(features.std(0).clamp_min(1e-6))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    w = defined.float()
    for _ in range(steps):
        pick = torch.randint(0, len(features), (min(batch, len(features)),), generator=generator)
        s = net.log_scale(features[pick])
        loss = ((s + residuals[pick] ** 2 * torch.exp(-2 * s) / 2) * w[pick]).sum() / w[pick].sum().clamp_min(1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return net.eval()
