"""Position embeddings for kernel networks and attention."""
from __future__ import annotations

import math

import torch
from torch import nn


class SinusoidalEmbedding(nn.Module):
    """`x (N, d) -> (N, d (1 + 2F))`: the coordinates themselves, then `[sin(2^k pi x_i / 2), cos(2^k pi x_i / 2)]`
    for k = 0..F-1 (NeRF-style octaves). The longest period is 4, twice the model's [-1, 1] box, so opposite
    faces (x = -1 and x = +1) embed differently; the finest wavelength is 2^(2-F).

    Args:
        dim: coordinate dimension d. frequencies: F."""

    def __init__(self, dim: int, frequencies: int = 8):
        super().__init__()
        self.dim, self.frequencies = dim, frequencies
        self.register_buffer("scales", 0.5 * math.pi * 2.0 ** torch.arange(frequencies), persistent=False)

    @property
    def out_channels(self) -> int:
        return self.dim * (1 + 2 * self.frequencies)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        angles = (x[..., None] * self.scales.to(x.dtype)).flatten(-2)  # (N, d F)
        return torch.cat([x, angles.sin(), angles.cos()], dim=-1)
