"""Transolver-style operator: physics (slice) attention over the input points, with query points that read the
slice tokens without shaping them, and point features that carry the geometry and the boundary conditions."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from geoop.geometry.local import boundary_curvature, distance_and_gradient
from geoop.graph.interpolation import idw_matrix
from geoop.graph.structures import Structure, blocks, rows, sample_ids, total
from geoop.layers.attention import from_padded, to_padded
from geoop.layers.embeddings import SinusoidalEmbedding
from geoop.layers.mlp import MLP
from geoop.layers.physics_attention import SliceBlock
from geoop.models.base import Need, Operator, NO_INPUTS, SampleInputs


@dataclass
class PointInputs(Structure):
    """Per-geometry inputs of `Transolver` for one or more samples: pos `(N, d)`, batch `(N,)`, weights
    `(N,)` (token pooling weights), geo `(N, G)` local geometry (signed distance, its gradient, normal,
    boundary flag, curvature); query_batch `(M,)` the sample of each output row; for queries that are not the
    points themselves, query_pos `(M, d)`, query_geo `(M, G)` and to_queries `(M, N)` (inverse-distance
    interpolation of node data)."""

    pos: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    weights: torch.Tensor = rows()
    geo: torch.Tensor = rows()
    query_batch: torch.Tensor = sample_ids()
    n_samples: int = total(default=1)
    query_pos: torch.Tensor | None = rows(default=None)
    query_geo: torch.Tensor | None = rows(default=None)
    to_queries: torch.Tensor | None = blocks(default=None)


class Transolver(Operator):
    """Physics-attention operator for fields on any point set, 2D or 3D.

        h0 = MLP([x, e(x), geometry(x), f(x)])                                     at the input points
        h <- h + SliceAttention(LN h); h <- h + MLP(LN h)                          `layers` times
        u = Linear(LN h)

    Each point has soft memberships over `slices` learned slices per head; a slice token is the (quadrature-
    weighted) mean of its points, the tokens attend to each other, and each point reads them back. Queries that
    are not the input points follow the same layers but only read the tokens of the input points, so a query's
    output depends on the inputs and on itself alone (chunked prediction is exact, and a query on a node gets
    that node's output). Features: coordinates and their sinusoidal embedding (`frequencies` octaves), the
    signed distance and its gradient, normals, boundary flags and boundary curvature, the input fields (with
    the boundary data carried inward, see `InputLayout`), and for every spatial-vector input (e.g. a free stream
    U, its first channel in `vector_channels`) its dot products with the normal and with the distance gradient,
    so n.U is seen directly.

    Args:
        dim, in_channels, out_channels. hidden: width C. layers, heads, slices: the attention stack.
        mlp_ratio: block MLP width / C. token_weights: "quadrature" (tokens are integrals: the same for any
        mesh density) or "uniform" (every point counts once, as in the paper). use_sdf: signed distance features
        (needs `sdf_fn`). vector_channels: where spatial vectors start among the inputs (filled from the
        dataset by the registry).
    Shapes: forward(f `(N, C_in)` or None, inputs) -> `(N, C_out)` at the points, or `(M, C_out)` at the queries.
    """

    needs = frozenset({Need.WEIGHTS, Need.BOUNDARY, Need.NORMALS, Need.SDF})

    def __init__(self, dim: int, in_channels: int, out_channels: int, hidden: int = 128, layers: int = 6,
                 heads: int = 8, slices: int = 32, mlp_ratio: float = 1.0, frequencies: int = 6,
                 token_weights: str = "quadrature", use_sdf: bool = True, vector_channels: Sequence[int] = ()):
        super().__init__()
        if token_weights not in ("quadrature", "uniform"):
            raise ValueError(f"token_weights must be 'quadrature' or 'uniform', got {token_weights!r}")
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.token_weights, self.use_sdf = token_weights, use_sdf
        self.vector_channels = list(vector_channels)
        self.embed = SinusoidalEmbedding(dim, frequencies)
        n_geo = 3 + 2 * dim
        n_features = self.embed.out_channels + n_geo + in_channels + 2 * len(self.vector_channels)
        self.lift = MLP(n_features, [2 * hidden], hidden)
        self.blocks = nn.ModuleList(SliceBlock(hidden, heads, slices, mlp_ratio) for _ in range(layers))
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out_channels))

    @property
    def geo_channels(self) -> int:
        return 3 + 2 * self.dim

    @torch.no_grad()
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None,
                inputs: SampleInputs = NO_INPUTS) -> PointInputs:
        """Local geometry and query interpolation of ONE geometry `pos (N, d)` in model coordinates (queries
        default to the points). Reads `inputs.weights (N,)` (quadrature weights), `boundary`, `normals`
        (boundary flags and outward normals at the points) and `sdf_fn` (when `use_sdf`)."""
        pos = torch.as_tensor(pos, dtype=torch.float32)
        n = len(pos)
        if pos.shape[1] != self.dim:
            raise ValueError(f"this Transolver is {self.dim}D; got points {tuple(pos.shape)}")
        weights = torch.full((n,), 1.0 / n) if inputs.weights is None or self.token_weights == "uniform" else \
            torch.as_tensor(inputs.weights, dtype=torch.float32)
        boundary = torch.zeros(n, dtype=torch.bool) if inputs.boundary is None else \
            torch.as_tensor(inputs.boundary).bool()
        normals = torch.zeros_like(pos) if inputs.normals is None else \
            torch.as_tensor(inputs.normals, dtype=torch.float32)
        sdf_fn = inputs.sdf_fn
        if self.use_sdf:
            self.require(inputs, Need.SDF)
        curvature = boundary_curvature(pos.double().numpy(), boundary.numpy(), normals.double().numpy())
        geo = torch.cat([self._distance_features(sdf_fn, pos), normals, boundary.float()[:, None],
                         torch.as_tensor(curvature, dtype=torch.float32)[:, None]], dim=1)
        zeros = torch.zeros(n, dtype=torch.int64)
        prepared = PointInputs(pos, zeros, weights, geo, zeros)
        return prepared if queries is None else self.with_queries(prepared, queries, inputs)

    @torch.no_grad()
    def with_queries(self, prepared: PointInputs, queries: torch.Tensor,
                     inputs: SampleInputs = NO_INPUTS) -> PointInputs:
        """`prepared` of ONE geometry with new queries `(M, d)` (their local geometry and interpolation weights);
        the input side is shared. Queries equal to the points are the points themselves."""
        device = prepared.pos.device
        pos, geo = prepared.pos.cpu(), prepared.geo.cpu()
        queries = torch.as_tensor(queries, dtype=torch.float32).cpu()
        if queries.shape == pos.shape and torch.equal(queries, pos):
            return replace(prepared, query_batch=prepared.batch, query_pos=None, query_geo=None, to_queries=None)
        if queries.shape[1] != self.dim:
            raise ValueError(f"this Transolver is {self.dim}D; got queries {tuple(queries.shape)}")
        to_queries = idw_matrix(pos, queries)
        carried = torch.sparse.mm(to_queries, geo[:, self.dim + 1:])  # normals, flags, curvature
        query_geo = torch.cat([self._distance_features(inputs.sdf_fn, queries), carried], dim=1)
        return replace(prepared, query_batch=torch.zeros(len(queries), dtype=torch.int64, device=device),
                       query_pos=queries.to(device), query_geo=query_geo.to(device), to_queries=to_queries.to(device))

    def _distance_features(self, sdf_fn: Callable | None, points: torch.Tensor) -> torch.Tensor:
        """`(M, 1 + d)`: signed distance and its gradient at `points` (zeros without an SDF)."""
        if not self.use_sdf:
            return torch.zeros((len(points), 1 + self.dim))
        sdf, grad = distance_and_gradient(sdf_fn, points.double().numpy())
        return torch.as_tensor(np.concatenate([sdf[:, None], grad], axis=1), dtype=torch.float32)

    def _features(self, pos: torch.Tensor, geo: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        parts = [self.embed(pos), geo, f]
        gradient, normal = geo[:, 1: self.dim + 1], geo[:, self.dim + 1: 2 * self.dim + 1]
        for c in self.vector_channels:
            v = f[:, c: c + self.dim]
            parts += [(normal * v).sum(1, keepdim=True), (gradient * v).sum(1, keepdim=True)]
        return self.lift(torch.cat(parts, dim=1))

    def encode(self, f: torch.Tensor | None, inputs: PointInputs) -> SliceState:
        """The input points through every layer, and the slice tokens each layer gave the queries to read."""
        b = inputs.n_samples
        f = inputs.pos.new_zeros((len(inputs.pos), 0)) if f is None else f
        h, mask = to_padded(self._features(inputs.pos, inputs.geo, f), inputs.batch, b)
        weight, _ = to_padded(inputs.weights[:, None], inputs.batch, b)
        tokens = []
        for block in self.blocks:
            h, layer_tokens = block(h, weight[..., 0])
            tokens.append(layer_tokens)
        return SliceState(f, h, mask, tokens)

    def decode(self, state: SliceState, inputs: PointInputs) -> torch.Tensor:
        """`(M, C_out)` at the queries of `inputs` (or at the points, when the queries are the points)."""
        if inputs.to_queries is None:
            return from_padded(self.head(state.h), state.mask)
        with torch.autocast(state.f.device.type, enabled=False):  # sparse products stay in float32
            at_queries = torch.sparse.mm(inputs.to_queries, state.f.float())
        features = self._features(inputs.query_pos, inputs.query_geo, at_queries)
        hq, q_mask = to_padded(features, inputs.query_batch, inputs.n_samples)
        for block, tokens in zip(self.blocks, state.tokens, strict=True):
            hq = block.read(hq, tokens)
        return from_padded(self.head(hq), q_mask)


@dataclass
class SliceState:
    """What `Transolver.encode` keeps for the queries: the input fields f `(N, C_in)`, the points' last hidden
    state h `(B, N_max, C)` with its mask, and each layer's slice tokens `(B, H, S, D)`."""

    f: torch.Tensor
    h: torch.Tensor
    mask: torch.Tensor
    tokens: list[torch.Tensor]
