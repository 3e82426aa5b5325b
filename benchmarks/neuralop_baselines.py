"""The outside baselines of the accuracy benchmark, from `neuraloperator` (`pip install neuraloperator==2.0.0`),
wrapped as geoop `Operator`s (prepare -> collate -> encode -> decode) so that geoop's Trainer trains them on
the same splits, budget, schedule, loss and metric as geoop's own models. Importing this module registers them:

- `neuralop_fno`: neuraloperator's FNO on a raster of each geometry, what a user would write without geoop:
  the input fields interpolated piecewise-linearly onto a regular grid over the model's [-1, 1]^d box (grid
  nodes outside the mesh's convex hull take their nearest node), with the signed distance and an inside mask
  as two more channels; the predicted raster is read back at the query points by multilinear interpolation.
- `neuralop_gino`: neuraloperator's GINO as shipped (its own neighbor search and reductions, run in every
  forward; it takes one geometry per call, so a batch runs sample by sample), with the signed distance on its
  latent grid as latent features, coordinates mapped to [0, 1] as its examples do.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from geoop.decomposition.transfer import point_to_grid_matrix
from geoop.layers.attention import to_padded
from geoop.models.base import Need, Operator, NO_INPUTS, SampleInputs
from geoop.models.kdfno import _torch_sparse
from geoop.models.registry import DataFacts, register
from geoop.graph.structures import Structure, blocks, rows, sample_ids, total


def _grid(dim: int, resolution: int) -> np.ndarray:
    """`(R^d, d)` nodes of the endpoint-inclusive grid over [-1, 1]^d, row-major (last axis fastest)."""
    axes = [np.linspace(-1.0, 1.0, resolution)] * dim
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, dim)


@dataclass
class GridInputs(Structure):
    """Per-geometry inputs of both baselines, for one or more samples: to_grid `(B * G, N)` raster
    interpolation (FNO only), grid_geo `(B * G, 2)` signed distance and inside mask at the grid nodes, pos
    `(N, d)` and batch `(N,)`, queries `(M, d)` and query_batch `(M,)` in model coordinates."""

    to_grid: torch.Tensor | None = blocks()
    grid_geo: torch.Tensor = rows()
    pos: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    queries: torch.Tensor = rows()
    query_batch: torch.Tensor = sample_ids()
    n_samples: int = total(default=1)


def _tensors_only(module: nn.Module, state: dict, prefix: str, local_metadata: dict) -> None:
    for key in [k for k, v in state.items() if not torch.is_tensor(v)]:
        del state[key]


class _GridBaseline(Operator):
    needs = frozenset({Need.SDF})  # geoop's FieldOperator then passes the distance function to prepare

    def __init__(self, dim: int, in_channels: int, resolution: int, raster: bool, derived: Sequence[int]):
        super().__init__()
        self.dim, self.resolution, self.raster = dim, resolution, raster
        raw = [c for c in range(in_channels) if c not in set(derived)]
        self.register_buffer("raw", torch.tensor(raw, dtype=torch.int64), persistent=False)
        self.n_raw = len(raw)
        self.register_buffer("nodes", torch.tensor(_grid(dim, resolution), dtype=torch.float32), persistent=False)
        self._register_state_dict_hook(_tensors_only)  # neuraloperator adds its init arguments to state dicts

    @torch.no_grad()
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None,
                inputs: SampleInputs = NO_INPUTS) -> GridInputs:
        pos = torch.as_tensor(pos, dtype=torch.float32)
        queries = pos if queries is None else torch.as_tensor(queries, dtype=torch.float32)
        nodes = self.nodes.double().numpy()
        sdf = np.asarray(inputs.sdf_fn(nodes), dtype=np.float64)
        geo = torch.tensor(np.stack([sdf, (sdf <= 0).astype(np.float64)], axis=1), dtype=torch.float32)
        to_grid = _torch_sparse(point_to_grid_matrix(pos.double().numpy(), nodes)[0]) if self.raster else None
        return GridInputs(to_grid, geo, pos, torch.zeros(len(pos), dtype=torch.int64), queries,
                          torch.zeros(len(queries), dtype=torch.int64))

    @torch.no_grad()
    def with_queries(self, prepared: GridInputs, queries: torch.Tensor,
                     inputs: SampleInputs = NO_INPUTS) -> GridInputs:
        queries = torch.as_tensor(queries, dtype=torch.float32).to(prepared.pos.device)
        return replace(prepared, queries=queries, query_batch=torch.zeros(len(queries), dtype=torch.int64,
                                                                          device=queries.device))

    def _raw(self, f: torch.Tensor | None, n: int) -> torch.Tensor:
        """The dataset's own input channels `(N, C_raw)` of f."""
        return self.raw.new_zeros((n, 0), dtype=torch.float32) if f is None else f[:, self.raw].float()

    def _layout(self, values: torch.Tensor, b: int) -> torch.Tensor:
        """`(B * G, C) -> (B, C, R, ..., R)`."""
        return values.reshape(b, *(self.resolution,) * self.dim, -1).movedim(-1, 1).contiguous()


class RasterFNO(_GridBaseline):
    """neuraloperator's FNO on a `resolution^d` raster, read back at the queries. Shapes: forward(f `(N, C_in)`
    or None, inputs) -> `(M, C_out)`."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, resolution: int = 64, hidden: int = 32,
                 modes: int = 16, n_layers: int = 4, domain_padding: float = 0.1, derived: Sequence[int] = ()):
        super().__init__(dim, in_channels, resolution, raster=True, derived=derived)
        from neuralop.models import FNO

        self.fno = FNO(n_modes=(modes,) * dim, in_channels=self.n_raw + 2, out_channels=out_channels,
                       hidden_channels=hidden, n_layers=n_layers, domain_padding=domain_padding or None)

    def encode(self, f: torch.Tensor | None, inputs: GridInputs) -> torch.Tensor:
        """`(B, C_out, R, ..., R)` the predicted raster."""
        f = self._raw(f, len(inputs.pos))
        raster = torch.cat([torch.sparse.mm(inputs.to_grid, f), inputs.grid_geo], dim=1)
        return self.fno(self._layout(raster, inputs.n_samples))

    def decode(self, out: torch.Tensor, inputs: GridInputs) -> torch.Tensor:
        """`(M, C_out)` the raster read at the queries (multilinear)."""
        b = inputs.n_samples
        q, mask = to_padded(inputs.queries, inputs.query_batch, b)  # (B, M, d)
        # grid_sample's last coordinate indexes the first grid axis: reverse the axes; nodes sit on +-1
        where = q.flip(-1).reshape(b, -1, *(1,) * (self.dim - 1), self.dim)
        sampled = F.grid_sample(out, where, mode="bilinear", padding_mode="border", align_corners=True)
        return sampled.reshape(b, out.shape[1], -1).transpose(1, 2)[mask]


class NeuralopGINO(_GridBaseline):
    """neuraloperator's GINO, one geometry per call. Shapes: forward(f `(N, C_in)` or None, inputs) ->
    `(M, C_out)`."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, resolution: int = 32, hidden: int = 32,
                 modes: int = 12, n_layers: int = 4, radius_factor: float = 1.5,
                 in_gno_hidden: Sequence[int] = (32, 32), out_gno_hidden: Sequence[int] = (64, 64),
                 derived: Sequence[int] = ()):
        super().__init__(dim, in_channels, resolution, raster=False, derived=derived)
        from neuralop.models import GINO

        radius = radius_factor / (resolution - 1)  # grid spacings, in its [0, 1] coordinates
        kernel_only = self.n_raw == 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.gino = GINO(in_channels=max(self.n_raw, 1), out_channels=out_channels, latent_feature_channels=2,
                             gno_coord_dim=dim, in_gno_radius=radius, out_gno_radius=radius,
                             in_gno_transform_type="linear_kernelonly" if kernel_only else "linear",
                             fno_in_channels=8 if kernel_only else self.n_raw, fno_n_modes=(modes,) * dim,
                             fno_hidden_channels=hidden, fno_n_layers=n_layers, gno_use_open3d=False,
                             gno_use_torch_scatter=False, in_gno_channel_mlp_hidden_layers=list(in_gno_hidden),
                             out_gno_channel_mlp_hidden_layers=list(out_gno_hidden))

    def encode(self, f: torch.Tensor | None, inputs: GridInputs) -> torch.Tensor | None:
        """The raw input fields: neuraloperator's GINO takes its queries in the same call as its inputs, so
        everything runs in `decode`."""
        return self._raw(f, len(inputs.pos))

    def decode(self, f: torch.Tensor, inputs: GridInputs) -> torch.Tensor:
        latent = ((self.nodes + 1) / 2).reshape(1, *(self.resolution,) * self.dim, self.dim)
        g = self.resolution**self.dim
        outs = []
        for i in range(inputs.n_samples):
            at, to = inputs.batch == i, inputs.query_batch == i
            x = f[at][None] if self.n_raw else None
            features = inputs.grid_geo[i * g:(i + 1) * g].reshape(1, *(self.resolution,) * self.dim, 2)
            outs.append(self.gino(input_geom=((inputs.pos[at] + 1) / 2)[None], latent_queries=latent,
                                  output_queries=((inputs.queries[to] + 1) / 2)[None], x=x,
                                  latent_features=features)[0])
        return torch.cat(outs)


def _raw_inputs(cls: type[nn.Module]):
    """A builder that gives the baseline the dataset's own input channels only: what geoop derives from them
    (boundary data carried inward) is geoop's, not part of what a user would have written."""
    def build(dim: int, in_channels: int, out_channels: int, data: DataFacts,
              options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        options = {"derived": list(data.derived_channels), **options}
        return cls(dim, in_channels, out_channels, **options), options

    return build


register("neuralop_fno", _raw_inputs(RasterFNO))
register("neuralop_gino", _raw_inputs(NeuralopGINO))
