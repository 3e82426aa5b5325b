"""Pointwise multilayer perceptrons."""
from __future__ import annotations

from collections.abc import Sequence

from torch import nn


class MLP(nn.Sequential):
    """`(..., in) -> (..., out)`: Linear layers of widths `[in, *hidden, out]` with GELU between them."""

    def __init__(self, in_channels: int, hidden: Sequence[int], out_channels: int):
        widths = [in_channels, *hidden, out_channels]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(widths) - 2:
                layers.append(nn.GELU())
        super().__init__(*layers)
