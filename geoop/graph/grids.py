"""Latent regular grids, one per sample, over each sample's bounding box."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from geoop.graph.structures import Structure, rows, same, sample_ids


@dataclass
class LatentGrid(Structure):
    """Grids of `resolution^d` nodes per sample, row-major with the last axis fastest.

    points `(B * G^d, d)`; batch `(B * G^d,)`; lower/upper `(B, d)` corners; spacing `(B,)` the largest node
    spacing of each grid. `to_tensor` and `from_tensor` move node features between `(B * G^d, C)` and the
    `(B, C, G, ..., G)` layout that spectral convolutions use."""

    points: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    lower: torch.Tensor = rows()
    upper: torch.Tensor = rows()
    resolution: int = same()

    @property
    def dim(self) -> int:
        return self.points.shape[1]

    @property
    def n_samples(self) -> int:
        return self.lower.shape[0]

    @property
    def spacing(self) -> torch.Tensor:
        return ((self.upper - self.lower) / (self.resolution - 1)).max(dim=1).values

    def axes(self) -> list[torch.Tensor]:
        """The node coordinates along each axis `[(G,)] * d` of a single grid (B = 1): its points are their
        product, in the same row-major order (see `lattice_radius_search`)."""
        if self.n_samples != 1:
            raise ValueError(f"axes() describes one grid; this holds {self.n_samples}")
        g, d = self.resolution, self.dim
        nodes = self.points.reshape((g,) * d + (d,))
        return [nodes[(0,) * a + (slice(None),) + (0,) * (d - a - 1) + (a,)].contiguous() for a in range(d)]

    def to_tensor(self, features: torch.Tensor) -> torch.Tensor:
        """`(B * G^d, C) -> (B, C, G, ..., G)`."""
        shape = (self.n_samples,) + (self.resolution,) * self.dim + (features.shape[1],)
        return features.reshape(shape).movedim(-1, 1).contiguous()

    def from_tensor(self, grid: torch.Tensor) -> torch.Tensor:
        """`(B, C, G, ..., G) -> (B * G^d, C)`."""
        return grid.movedim(1, -1).reshape(-1, grid.shape[1])


def latent_grids(pos: torch.Tensor, batch: torch.Tensor | None, resolution: int, padding: float = 0.05,
                 n_samples: int | None = None, bounds: str | tuple = "cube") -> LatentGrid:
    """One grid per sample around its points, widened by `padding` of the largest extent on each side.

    bounds: "cube" - a cube around each sample's bounding box (equal spacing on every axis, so radii and
    spectral modes mean the same along each axis); "box" - the bounding box itself (finer along thin axes);
    or fixed `(lower, upper)` corners shared by all samples."""
    if resolution < 2:
        raise ValueError(f"a latent grid needs resolution >= 2, got {resolution}")
    dim = pos.shape[1]
    if batch is None:
        batch = torch.zeros(len(pos), dtype=torch.int64, device=pos.device)
    b = int(batch.max()) + 1 if n_samples is None else n_samples
    big = torch.finfo(pos.dtype).max
    lower = torch.full((b, dim), big, dtype=pos.dtype, device=pos.device)
    upper = torch.full((b, dim), -big, dtype=pos.dtype, device=pos.device)
    index = batch[:, None].expand_as(pos)
    lower = lower.scatter_reduce(0, index, pos, "amin")
    upper = upper.scatter_reduce(0, index, pos, "amax")
    extent = (upper - lower).max(dim=1, keepdim=True).values.clamp_min(1e-12)
    if isinstance(bounds, str):
        if bounds == "cube":
            center = (lower + upper) / 2
            lower, upper = center - extent / 2, center + extent / 2
        elif bounds != "box":
            raise ValueError(f"bounds must be 'cube', 'box' or (lower, upper), got {bounds!r}")
        pad = padding * extent
        lower, upper = lower - pad, upper + pad
    else:
        fixed = torch.as_tensor(np.asarray(bounds, dtype=np.float64), dtype=pos.dtype, device=pos.device)
        lower, upper = fixed[0].expand(b, dim).clone(), fixed[1].expand(b, dim).clone()
    t = torch.linspace(0, 1, resolution, dtype=pos.dtype, device=pos.device)
    unit = torch.stack(torch.meshgrid(*[t] * dim, indexing="ij"), dim=-1).reshape(-1, dim)  # (G^d, d)
    points = lower[:, None, :] + unit[None] * (upper - lower)[:, None, :]
    grid_batch = torch.arange(b, device=pos.device).repeat_interleave(resolution**dim)
    return LatentGrid(points.reshape(-1, dim), grid_batch, lower, upper, resolution)
