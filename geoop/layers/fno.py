"""Fourier neural operator blocks and backbone on regular grids (1D, 2D, 3D)."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from geoop.layers.spectral import SpectralConv


def _pointwise(dim: int, in_channels: int, out_channels: int) -> nn.Module:
    return {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}[dim](in_channels, out_channels, kernel_size=1)


class FNOBlock(nn.Module):
    """`h = GELU(K v + W v)`, then `h + MLP(h)`: a spectral convolution K, a linear skip W and a pointwise
    channel MLP (expansion 0.5) with a residual. Shapes: `(B, C, *S) -> (B, C, *S)`."""

    def __init__(self, channels: int, modes: Sequence[int], rank: int | None = None, mlp_expansion: float = 0.5,
                 clip_modes: bool = False):
        super().__init__()
        dim = len(modes)
        hidden = max(1, int(channels * mlp_expansion))
        self.spectral = SpectralConv(channels, channels, modes, rank, clip_modes)
        self.skip = _pointwise(dim, channels, channels)
        self.mlp = nn.Sequential(_pointwise(dim, channels, hidden), nn.GELU(), _pointwise(dim, hidden, channels))

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.spectral(v) + self.skip(v))
        return h + self.mlp(h)


class FNO(nn.Module):
    """Lifting -> `n_layers` FNO blocks -> projection, on grids `(B, C_in, *S) -> (B, C_out, *S)`.

    Non-periodic domains are zero-padded by `padding` (a fraction of each axis, at least `min_padding` nodes)
    before the blocks and cropped after, so the FFT's periodic wrap does not couple opposite faces.

    Args:
        in_channels, out_channels: C_in, C_out. hidden: channels inside. modes: per axis (see SpectralConv).
        n_layers: blocks. rank: CP rank of the spectral weights (None: dense). padding: fraction per axis.
        clip_modes: grids smaller than `modes` use the modes they have (one FNO for grids of several shapes).
    """

    def __init__(self, in_channels: int, out_channels: int, modes: Sequence[int], hidden: int = 64,
                 n_layers: int = 4, rank: int | None = None, padding: float = 0.0, lifting_ratio: int = 2,
                 min_padding: int = 0, clip_modes: bool = False):
        super().__init__()
        dim = len(modes)
        self.dim, self.padding, self.min_padding = dim, padding, min_padding
        self.lifting = nn.Sequential(_pointwise(dim, in_channels, lifting_ratio * hidden), nn.GELU(),
                                     _pointwise(dim, lifting_ratio * hidden, hidden))
        self.blocks = nn.ModuleList(FNOBlock(hidden, modes, rank, clip_modes=clip_modes) for _ in range(n_layers))
        self.projection = _pointwise(dim, hidden, out_channels)

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        sizes = v.shape[2:]
        h = self.lifting(v)
        pads = [max(int(round(self.padding * s)), self.min_padding) for s in sizes]
        if any(pads):
            h = F.pad(h, [p for size in reversed(pads) for p in (0, size)])
        for block in self.blocks:
            h = block(h)
        if any(pads):
            h = h[(slice(None), slice(None), *[slice(0, s) for s in sizes])]
        return self.projection(h)
