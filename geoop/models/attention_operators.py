"""Attention operators with cross-attention decoders: MINO-style (GNO pooling onto fixed latent tokens ->
transformer -> cross-attention at the queries) and GNOT-style (each input function a token set of its own,
heterogeneous normalised cross-attention, geometric gating). Queries never attend to each other, so the output
at a query does not depend on which other queries are asked for (predicting in chunks is exact)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from geoop.graph.graphs import bipartite_graph
from geoop.graph.interpolation import idw_matrix
from geoop.graph.structures import Structure, blocks, index, rows, same, sample_ids, total
from geoop.layers.attention import AttentionBlock, GatedExperts, MultiHeadAttention, from_padded, to_padded
from geoop.layers.embeddings import SinusoidalEmbedding
from geoop.layers.kernel_integral import KernelIntegral
from geoop.layers.mlp import MLP
from geoop.models.base import Need, Operator, NO_INPUTS, SampleInputs


@dataclass
class TokenInputs(Structure):
    """Per-geometry inputs of the attention operators, for one or more samples: pos `(N, d)`, batch `(N,)`,
    weights `(N,)`, boundary `(N,)` bool, normals `(N, d)`, queries `(M, d)`, query_batch `(M,)`; for MINO the
    edges points -> latent tokens `(2, E)` (token ids offset by sample), token_sdf `(B * T, 1)` or None, the
    signed distance at the queries query_sdf `(M, 1)` or None, and to_queries `(M, N)` (inverse-distance
    interpolation of the inputs to the queries; None when the queries are the points); boundary_weights `(N,)`
    the boundary measure of each node (GNOT weighs its boundary tokens by it)."""

    pos: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    weights: torch.Tensor = rows()
    boundary: torch.Tensor = rows()
    normals: torch.Tensor = rows()
    queries: torch.Tensor = rows()
    query_batch: torch.Tensor = sample_ids()
    n_samples: int = total()
    token_edges: torch.Tensor | None = index("pos", "n_tokens", default=None)
    token_sdf: torch.Tensor | None = rows(default=None)
    tokens_per_sample: int = same(default=0)
    query_sdf: torch.Tensor | None = rows(default=None)
    to_queries: torch.Tensor | None = blocks(default=None)
    boundary_weights: torch.Tensor | None = rows(default=None)

    @property
    def n_tokens(self) -> int:
        return self.n_samples * self.tokens_per_sample


def _token_inputs(pos: torch.Tensor, queries: torch.Tensor | None, inputs: SampleInputs) -> TokenInputs:
    """The token sets of ONE geometry `pos (N, d)` from the sample's weights, boundary flags, normals and
    boundary measure (defaults: equal weights, no boundary, each boundary node counting 1)."""
    weights, boundary, normals = inputs.weights, inputs.boundary, inputs.normals
    boundary_weights = inputs.boundary_weights
    pos = torch.as_tensor(pos, dtype=torch.float32)
    queries = pos if queries is None else torch.as_tensor(queries, dtype=torch.float32)
    n = len(pos)
    boundary = torch.zeros(n, dtype=torch.bool) if boundary is None else torch.as_tensor(boundary).bool()
    return TokenInputs(pos, torch.zeros(n, dtype=torch.int64),
                       torch.full((n,), 1.0 / n) if weights is None else torch.as_tensor(weights).float(),
                       boundary, torch.zeros_like(pos) if normals is None else torch.as_tensor(normals).float(),
                       queries, torch.zeros(len(queries), dtype=torch.int64), 1,
                       boundary_weights=boundary.float() if boundary_weights is None else
                       torch.as_tensor(boundary_weights).float())


class QueryDecoder(nn.Module):
    """Cross-attention decoder: each query, described by its coordinates (sinusoidal embedding) and
    `local_channels` features of its own (the inputs there, the signed distance), attends to latent tokens in
    `depth` blocks; LayerNorm + Linear head. Shapes: forward(q `(B, M, d)`, tokens `(B, T, C)`, token_mask,
    local `(B, M, local_channels)`) -> `(B, M, out)`."""

    def __init__(self, dim: int, channels: int, out_channels: int, heads: int, kind: str, depth: int = 2,
                 frequencies: int = 6, local_channels: int = 0):
        super().__init__()
        self.embed = SinusoidalEmbedding(dim, frequencies)
        self.lift = MLP(self.embed.out_channels + local_channels, [channels], channels)
        self.blocks = nn.ModuleList(AttentionBlock(channels, channels, heads, kind) for _ in range(depth))
        self.head = nn.Sequential(nn.LayerNorm(channels), nn.Linear(channels, out_channels))

    def forward(self, q: torch.Tensor, tokens: torch.Tensor, token_mask: torch.Tensor | None = None,
                local: torch.Tensor | None = None) -> torch.Tensor:
        x = self.lift(self.embed(q) if local is None else torch.cat([self.embed(q), local], dim=-1))
        for block in self.blocks:
            x = block(x, tokens, token_mask)
        return self.head(x)


class MINO(Operator):
    """GNO encoder onto fixed latent tokens -> transformer -> cross-attention decoder at any queries.

    The latent tokens sit on a `tokens_per_axis^d` grid over the model's [-1, 1]^d box (fixed, independent of
    the input discretization); each pools the input points within `radius` (a kernel integral weighted by the
    quadrature weights; a token with no point in reach takes its nearest point, never an empty mean). A query
    enters the decoder with what is known at it (the inputs interpolated there, exact at a node, and the signed
    distance), so the tokens need only carry the global context.

    Args:
        dim, in_channels, out_channels. tokens_per_axis: latent grid size. hidden: token width. heads, layers:
        the transformer over tokens; decoder_layers: cross-attention blocks at the queries; attention: "softmax",
        "linear" or "galerkin". radius: pooling radius (default 1.5 token spacings). use_sdf: tokens also carry
        the signed distance at their position (needs `sdf_fn`).
    Shapes: forward(f `(N, C_in)` or None, inputs) -> `(M, C_out)`.
    """

    needs = frozenset({Need.WEIGHTS, Need.SDF})

    def __init__(self, dim: int, in_channels: int, out_channels: int, tokens_per_axis: int = 8, hidden: int = 64,
                 heads: int = 4, layers: int = 3, decoder_layers: int = 2, attention: str = "softmax",
                 radius: float | None = None, gno_hidden: Sequence[int] = (64, 64), use_sdf: bool = True,
                 frequencies: int = 6, geometry_channels: int = 8):
        super().__init__()
        self.dim, self.use_sdf = dim, use_sdf
        axes = [torch.linspace(-1, 1, tokens_per_axis)] * dim
        grid = torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, dim)
        self.register_buffer("token_pos", grid)
        self.radius = radius or 1.5 * 2.0 / (tokens_per_axis - 1)
        gno_out = in_channels if in_channels else geometry_channels
        self.gno = KernelIntegral(dim, in_channels, gno_out, self.radius, gno_hidden,
                                  transform="linear" if in_channels else "linear_kernelonly", reduction="average",
                                  frequencies=frequencies)
        self.token_embed = SinusoidalEmbedding(dim, frequencies)
        self.lift = MLP(gno_out + int(use_sdf) + self.token_embed.out_channels, [hidden], hidden)
        self.encoder = nn.ModuleList(AttentionBlock(hidden, None, heads, attention) for _ in range(layers))
        self.decoder = QueryDecoder(dim, hidden, out_channels, heads, attention, decoder_layers, frequencies,
                                    local_channels=in_channels + int(use_sdf))

    @torch.no_grad()
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None,
                inputs: SampleInputs = NO_INPUTS) -> TokenInputs:
        """Token edges and SDF of ONE geometry `pos (N, d)` in model coordinates (queries default to pos).
        Reads `inputs.weights` (the pooling's quadrature) and `inputs.sdf_fn` (with `use_sdf`)."""
        tokens = _token_inputs(pos, queries, inputs)
        if tokens.pos.shape[1] != self.dim or tokens.queries.shape[1] != self.dim:
            raise ValueError(f"this MINO is {self.dim}D; got points {tuple(tokens.pos.shape)}")
        graph, _ = bipartite_graph(tokens.pos, self.token_pos, self.radius, fill_empty="nearest")
        tokens.token_edges, tokens.tokens_per_sample = graph.edge_index, len(self.token_pos)
        if self.use_sdf:
            self.require(inputs, Need.SDF)
            tokens.token_sdf = _sdf_at(inputs.sdf_fn, self.token_pos)
        return self.with_queries(tokens, tokens.pos if queries is None else queries, inputs)

    @torch.no_grad()
    def with_queries(self, tokens: TokenInputs, queries: torch.Tensor,
                     inputs: SampleInputs = NO_INPUTS) -> TokenInputs:
        """`tokens` of ONE geometry with new queries `(M, d)` (the inputs' interpolation there and the signed
        distance, from `inputs.sdf_fn`); the token side is shared."""
        tokens = _with_query_points(tokens, queries)
        device, queries = tokens.pos.device, tokens.queries
        if not (queries.shape == tokens.pos.shape and torch.equal(queries, tokens.pos)):
            tokens.to_queries = idw_matrix(tokens.pos.cpu(), queries.cpu()).to(device)
        if self.use_sdf:
            tokens.query_sdf = _sdf_at(inputs.sdf_fn, queries).to(device)
        return tokens

    def encode(self, f: torch.Tensor | None, inputs: TokenInputs) -> TokenState:
        """The latent tokens after the transformer, with the input fields for the queries' local features."""
        b, t = inputs.n_samples, len(self.token_pos)
        token_pos = self.token_pos.repeat(b, 1)
        pooled = self.gno(inputs.pos, token_pos, inputs.token_edges, f_y=f, weights=inputs.weights)
        parts = [pooled] + ([inputs.token_sdf] if self.use_sdf else []) + [self.token_embed(token_pos)]
        tokens = self.lift(torch.cat(parts, dim=1)).view(b, t, -1)
        for block in self.encoder:
            tokens = block(tokens)
        return TokenState(f, [tokens])

    def decode(self, state: TokenState, inputs: TokenInputs) -> torch.Tensor:
        """`(M, C_out)` at the queries: cross-attention to the tokens, with what is known at each query."""
        f, b = state.f, inputs.n_samples
        q, q_mask = to_padded(inputs.queries, inputs.query_batch, b)
        at_queries = f if f is None or inputs.to_queries is None else torch.sparse.mm(inputs.to_queries, f.float())
        local = [t for t in (at_queries, inputs.query_sdf if self.use_sdf else None) if t is not None]
        local = to_padded(torch.cat(local, dim=1), inputs.query_batch, b)[0] if local else None
        return from_padded(self.decoder(q, state.tokens[0], local=local), q_mask)


class GNOT(Operator):
    """GNOT-style operator transformer with query-independent outputs.

    Input functions are token sets of their own: all points `(pos, f)` and the boundary points
    `(pos, normal, f)`, each through its own branch MLP, and each key counts with its quadrature (point) or
    boundary-measure (boundary) weight, so attention is an integral over the domain, not a count of nodes.
    Every layer: the point tokens self-attend (masked); the queries cross-attend to every token set with
    separate keys, values and normalisation per set, summed (heterogeneous attention); then a geometric-gating
    mixture of experts. Unlike the reference code, padded tokens are masked out of every sum, and queries do not
    self-attend (so a query's output is its own).

    Args:
        dim, in_channels, out_channels. hidden, heads, layers. attention: "linear" (GNOT), "galerkin" or
        "softmax". experts: gated FFNs. frequencies: query embedding octaves.
    Shapes: forward(f `(N, C_in)` or None, inputs) -> `(M, C_out)`.
    """

    def __init__(self, dim: int, in_channels: int, out_channels: int, hidden: int = 64, heads: int = 4,
                 layers: int = 3, attention: str = "linear", experts: int = 3, frequencies: int = 6):
        super().__init__()
        self.dim, self.in_channels = dim, in_channels
        embed = SinusoidalEmbedding(dim, frequencies)
        self.point_branch = nn.Sequential(embed, MLP(embed.out_channels, [hidden], hidden))
        self.point_values = MLP(dim + in_channels, [hidden], hidden)
        self.boundary_branch = MLP(2 * dim + in_channels, [hidden, hidden], hidden)
        self.query_embed = SinusoidalEmbedding(dim, frequencies)
        self.trunk = MLP(self.query_embed.out_channels, [hidden, hidden], hidden)
        self.self_blocks = nn.ModuleList(AttentionBlock(hidden, None, heads, attention) for _ in range(layers))
        self.cross = nn.ModuleList(nn.ModuleList(MultiHeadAttention(hidden, hidden, hidden, heads, attention)
                                                 for _ in range(2)) for _ in range(layers))
        self.cross_norms = nn.ModuleList(nn.ModuleList(nn.LayerNorm(hidden) for _ in range(3))
                                         for _ in range(layers))
        self.experts = nn.ModuleList(GatedExperts(hidden, dim, experts) for _ in range(layers))
        self.expert_norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, out_channels))

    needs = frozenset({Need.WEIGHTS, Need.BOUNDARY, Need.NORMALS, Need.BOUNDARY_WEIGHTS})

    @torch.no_grad()
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None,
                inputs: SampleInputs = NO_INPUTS) -> TokenInputs:
        """Token sets of ONE geometry (nothing to precompute beyond grouping). Point tokens count with their
        quadrature `inputs.weights`, boundary tokens (`boundary`, `normals`) with their `boundary_weights`."""
        tokens = _token_inputs(pos, queries, inputs)
        if tokens.pos.shape[1] != self.dim or tokens.queries.shape[1] != self.dim:
            raise ValueError(f"this GNOT is {self.dim}D; got points {tuple(tokens.pos.shape)}")
        return tokens

    @torch.no_grad()
    def with_queries(self, tokens: TokenInputs, queries: torch.Tensor,
                     inputs: SampleInputs = NO_INPUTS) -> TokenInputs:
        """`tokens` of ONE geometry with new queries `(M, d)`; the token sets are shared."""
        return _with_query_points(tokens, queries)

    def encode(self, f: torch.Tensor | None, inputs: TokenInputs) -> TokenState:
        """Every layer's point tokens (after its self-attention) and the boundary tokens, with their masks and
        weights: what the queries attend to."""
        b = inputs.n_samples
        f = inputs.pos.new_zeros((len(inputs.pos), 0)) if f is None else f
        points = self.point_branch(inputs.pos) + self.point_values(torch.cat([inputs.pos, f], dim=1))
        tokens, token_mask = to_padded(points, inputs.batch, b)
        token_weight = to_padded(inputs.weights[:, None], inputs.batch, b)[0][..., 0]
        on = inputs.boundary
        bnd_rows = torch.cat([inputs.pos[on], inputs.normals[on], f[on]], dim=1)
        bnd, bnd_mask = to_padded(self.boundary_branch(bnd_rows), inputs.batch[on], b)
        bnd_weight = to_padded(inputs.boundary_weights[on][:, None], inputs.batch[on], b)[0][..., 0]
        layers = []
        for block in self.self_blocks:
            tokens = block(tokens, None, token_mask, token_weight)
            layers.append(tokens)
        return TokenState(f, layers, (token_mask, token_weight, bnd, bnd_mask, bnd_weight))

    def decode(self, state: TokenState, inputs: TokenInputs) -> torch.Tensor:
        """`(M, C_out)` at the queries: heterogeneous cross-attention to the token sets of every layer."""
        token_mask, token_weight, bnd, bnd_mask, bnd_weight = state.extra
        q_pos, q_mask = to_padded(inputs.queries, inputs.query_batch, inputs.n_samples)
        x = self.trunk(self.query_embed(q_pos))
        for layer, tokens in enumerate(state.tokens):
            norm_x, norm_t, norm_b = self.cross_norms[layer]
            attend_points, attend_boundary = self.cross[layer]
            # always run (a geometry without boundary points gives an empty, masked set), so that every
            # parameter takes part in every step, as DistributedDataParallel requires
            x = (x + attend_points(norm_x(x), norm_t(tokens), token_mask, token_weight)
                 + attend_boundary(norm_x(x), norm_b(bnd), bnd_mask, bnd_weight))
            x = x + self.expert_norms[layer](self.experts[layer](x, q_pos))
        return from_padded(self.head(x), q_mask)


@dataclass
class TokenState:
    """What the attention operators' `encode` keeps for the queries: the input fields f `(N, C_in)` or None,
    the token tensors `(B, T, C)` the queries attend to (one per decoder stage), and the model's other
    per-sample tensors (masks, weights)."""

    f: torch.Tensor | None
    tokens: list[torch.Tensor]
    extra: tuple = ()


def _sdf_at(sdf_fn: Callable, points: torch.Tensor) -> torch.Tensor:
    """`(K, 1)` float32 signed distance at `points (K, d)`."""
    return torch.as_tensor(np.asarray(sdf_fn(points.double().cpu().numpy())), dtype=torch.float32)[:, None]


def _with_query_points(inputs: TokenInputs, queries: torch.Tensor) -> TokenInputs:
    """A copy of single-sample `inputs` whose queries are `queries (M, d)` (query-side extras cleared)."""
    device = inputs.pos.device
    queries = torch.as_tensor(queries, dtype=torch.float32).to(device)
    if queries.ndim != 2 or queries.shape[1] != inputs.pos.shape[1]:
        raise ValueError(f"queries must be (M, {inputs.pos.shape[1]}), got {tuple(queries.shape)}")
    return replace(inputs, queries=queries, query_batch=torch.zeros(len(queries), dtype=torch.int64, device=device),
                   query_sdf=None, to_queries=None)
