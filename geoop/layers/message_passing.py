"""Edge updates of mesh message passing, computed from node projections so that no `(E, 3C)` concatenation is
ever built."""
from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class EdgeUpdate(nn.Module):
    """`e' = LN(W_2 GELU(W_1 [h_dst, h_src, e] + b_1) + b_2)` for every edge (target, source), the edge MLP of
    MeshGraphNets-style message passing. `W_1` is split by its input blocks: the two node blocks are applied
    once per node and gathered, so the first layer costs `O(E C^2 + N C^2)` instead of `O(3 E C^2)` and builds no
    concatenation; initialised as `nn.Linear(3C, C)` would be.

    Shapes: forward(h `(N, C)`, e `(E, C)`, src `(E,)`, dst `(E,)`) -> `(E, C)`.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.nodes = nn.Linear(channels, 2 * channels, bias=False)  # [W_dst; W_src]
        self.edges = nn.Linear(channels, channels)
        self.out = nn.Linear(channels, channels)
        self.norm = nn.LayerNorm(channels)
        bound = 1 / math.sqrt(3 * channels)
        for parameter in (self.nodes.weight, self.edges.weight, self.edges.bias):
            nn.init.uniform_(parameter, -bound, bound)

    def forward(self, h: torch.Tensor, e: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        at_dst, at_src = self.nodes(h).chunk(2, dim=1)
        hidden = at_dst.index_select(0, dst) + at_src.index_select(0, src) + self.edges(e)
        return self.norm(self.out(F.gelu(hidden)))
