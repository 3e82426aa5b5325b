"""Graph kernel network: the GNO baseline of Li et al. (2020), stacked kernel integrals on one point set."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from geoop.layers.kernel_integral import KernelIntegral
from geoop.layers.mlp import MLP


class GraphKernelNetwork(nn.Module):
    """`v_{t+1}(x) = GELU(W v_t(x) + (K_t v_t)(x))` for t < depth, on a radius (or mesh) graph of the points,
    with K_t a nonlinear kernel integral (weighted average over the neighbors); lifting and projection MLPs.

    Shapes: forward(pos `(N, d)`, f `(N, C_in)`, edge_index `(2, E)`, weights `(N,)`) -> `(N, C_out)`.
    """

    def __init__(self, dim: int, in_channels: int, out_channels: int, radius: float, width: int = 64, depth: int = 4,
                 kernel_hidden: Sequence[int] = (64, 64), frequencies: int = 6):
        super().__init__()
        self.lift = MLP(in_channels + dim, [width], width)
        self.kernels = nn.ModuleList(KernelIntegral(dim, width, width, radius, kernel_hidden, transform="nonlinear",
                                                    reduction="average", frequencies=frequencies)
                                     for _ in range(depth))
        self.linears = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.project = MLP(width, [width], out_channels)

    def forward(self, pos: torch.Tensor, f: torch.Tensor, edge_index: torch.Tensor,
                weights: torch.Tensor) -> torch.Tensor:
        v = self.lift(torch.cat([f, pos], dim=1))
        for kernel, linear in zip(self.kernels, self.linears, strict=True):
            v = F.gelu(linear(v) + kernel(pos, pos, edge_index, f_y=v, weights=weights))
        return self.project(v)
