"""Position embeddings for kernel networks."""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """`x (N, d) -> (N, 2 d F)`: `[sin(2^k pi x_i), cos(2^k pi x_i)]` for k = 0..F-1 (NeRF-style octaves), so
    coordinates in [-1, 1] are resolved down to about 2^-F.

    Args:
        dim: coordinate dimension d. frequencies: F."""

    def __init__(self, dim: int, frequencies: int = 8):
        super().__init__()
        self.dim, self.frequencies = dim, frequencies
        self.register_buffer("scales", math.pi * 2.0 ** torch.arange(frequencies), persistent=False)

    @property
    def out_channels(self) -> int:
        return 2 * self.dim * self.frequencies

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (x[..., None] * self.scales.to(x.dtype)).flatten(-2)  # (N, d F)
        return torch.cat([angles.sin(), angles.cos()], dim=-1)
