"""BENO-style boundary-embedded GNN: two message-passing branches over the same graph (kNN plus mesh edges),
one for the interior source, one for the boundary data, each layer conditioned on a transformer encoding of the
boundary nodes, so a boundary's shape and values reach every interior node at every step."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from geoop.graph.interpolation import idw_matrix
from geoop.graph.neighbors import knn_search
from geoop.graph.scatter import scatter_sum
from geoop.graph.structures import Structure, blocks, index, rows, sample_ids, total
from geoop.layers.attention import AttentionBlock, MultiHeadAttention, to_padded
from geoop.layers.message_passing import EdgeUpdate
from geoop.layers.mlp import MLP
from geoop.models.base import Need, Operator, NO_INPUTS, SampleInputs


@dataclass
class BoundaryGraphs(Structure):
    """Per-geometry structures of `BENO`, for one or more samples: pos `(N, d)`, batch `(N,)`, node_geo
    `(N, 1 + d)` (signed distance to the boundary and unit direction to its nearest boundary node), edges
    `(2, E)` (source, target), spacing `(N,)` the median edge length of each node's geometry (edge offsets are
    divided by it, so message passing sees O(1) offsets on any mesh), boundary_index `(N_b,)` into the nodes,
    boundary_normals `(N_b, d)`, to_queries `(M, N)` sparse interpolation from nodes to queries, query_batch
    `(M,)`."""

    pos: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    node_geo: torch.Tensor = rows()
    edges: torch.Tensor = index("pos", "pos")
    spacing: torch.Tensor = rows()
    boundary_index: torch.Tensor = index("pos")
    boundary_normals: torch.Tensor = rows()
    to_queries: torch.Tensor = blocks()
    query_batch: torch.Tensor = sample_ids()
    n_samples: int = total()


class _Branch(nn.Module):
    """One branch: node/edge encoders, boundary transformer with one pooled vector per layer, message passing
    `e' = LN(MLP[h_i, h_j, e]); m_i = mean_j e'; h' = LN(MLP[m_i, h_i, g, z])` with residuals, and a decoder.
    `g` is the mean of the node states over the sample (a virtual node, when `global_context`): local
    messages travel one hop per layer, which is far less than a mesh's width, while an elliptic solution at a
    node depends on the data everywhere."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, hidden: int, layers: int, heads: int,
                 boundary_layers: int, conditioned: bool = True, global_context: bool = True):
        super().__init__()
        self.conditioned, self.global_context = conditioned, global_context
        self.node_encoder = nn.Sequential(MLP(2 * dim + 1 + in_channels, [hidden], hidden), nn.LayerNorm(hidden))
        self.edge_encoder = nn.Sequential(MLP(dim + 1, [hidden], hidden), nn.LayerNorm(hidden))
        if conditioned:
            self.boundary_encoder = MLP(2 * dim + in_channels, [hidden], hidden)
            self.boundary_blocks = nn.ModuleList(AttentionBlock(hidden, None, heads)
                                                 for _ in range(boundary_layers))
            self.layer_queries = nn.Parameter(torch.randn(layers, hidden) / hidden ** 0.5)
            self.pool = MultiHeadAttention(hidden, hidden, hidden, heads)
        self.edge_updates = nn.ModuleList(EdgeUpdate(hidden) for _ in range(layers))
        node_inputs = (2 + conditioned + global_context) * hidden
        self.node_mlps = nn.ModuleList(nn.Sequential(MLP(node_inputs, [hidden], hidden), nn.LayerNorm(hidden))
                                       for _ in range(layers))
        self.decoder = MLP(hidden, [hidden], out_channels)

    def _boundary_vectors(self, x: torch.Tensor, g: BoundaryGraphs) -> torch.Tensor:
        """`(B, L, C)`: one vector per message-passing layer, pooled from a transformer over boundary nodes."""
        b = g.boundary_index
        rows = self.boundary_encoder(torch.cat([g.pos[b], g.boundary_normals, x[b]], dim=1))
        tokens, mask = to_padded(rows, g.batch[b], g.n_samples)
        for block in self.boundary_blocks:
            tokens = block(tokens, None, mask)
        return self.pool(self.layer_queries.expand(g.n_samples, -1, -1), tokens, mask)

    def forward(self, x: torch.Tensor, g: BoundaryGraphs) -> torch.Tensor:
        src, dst = g.edges
        h = self.node_encoder(torch.cat([g.pos, g.node_geo, x], dim=1))
        rel = (g.pos.index_select(0, dst) - g.pos.index_select(0, src)) / g.spacing[dst, None]
        e = self.edge_encoder(torch.cat([rel, rel.norm(dim=1, keepdim=True)], dim=1))
        z = self._boundary_vectors(x, g) if self.conditioned else None
        degree = scatter_sum(torch.ones_like(dst, dtype=h.dtype)[:, None], dst, len(h)).clamp_min(1)
        sizes = scatter_sum(torch.ones_like(g.batch, dtype=h.dtype)[:, None], g.batch, g.n_samples).clamp_min(1)
        for layer, (edge_update, node_mlp) in enumerate(zip(self.edge_updates, self.node_mlps, strict=True)):
            e = e + edge_update(h, e, src, dst)
            inputs = [scatter_sum(e, dst, len(h)) / degree, h]
            if self.global_context:
                inputs.append((scatter_sum(h, g.batch, g.n_samples) / sizes).index_select(0, g.batch))
            if z is not None:
                inputs.append(z[:, layer].index_select(0, g.batch))
            h = h + node_mlp(torch.cat(inputs, dim=1))
        return self.decoder(h)


class BENO(Operator):
    """Boundary-embedded neural operator for boundary-value problems on any geometry.

        u = Branch_1(source, boundary values := 0) + Branch_2(boundary values) - Branch_2(boundary values := 0)

    Two branches with separate weights over the same graph; the second enters as a difference, so zero boundary
    data gives exactly the source branch's solution (the Green's-function split u = u_f + u_g). Node features
    work on any geometry: position, signed distance to the boundary (from `sdf_fn`, else the distance to the
    nearest boundary node) and the unit direction to that node; no grid-aligned distances. Each message-passing
    layer gets its own pooled vector of a transformer over the boundary nodes (position, normal, boundary
    values, and their type channels, e.g. Dirichlet/Neumann masks). Predictions at queries off the nodes are
    inverse-distance interpolations of the node values (exact at nodes).

    Args:
        dim, in_channels, out_channels. boundary_channels: input channels holding boundary data (values);
        type_channels: channels saying which kind of boundary condition applies (kept in both branches); the
        rest are interior data (the source). hidden, layers, heads, boundary_layers, k: kNN neighbors.
        global_context: feed every node update the mean node state of its sample (a virtual node), so that
        information crosses the mesh in one layer rather than one hop per layer.
    Shapes: forward(f `(N, C_in)` or None, graphs) -> `(M, C_out)`.
    """

    # the node features take the geometry's signed distance; the graph adds the mesh edges (see the registry)
    needs = frozenset({Need.SDF, Need.MESH_EDGES, Need.BOUNDARY, Need.NORMALS})

    def __init__(self, dim: int, in_channels: int, out_channels: int, boundary_channels: Sequence[int] = (),
                 type_channels: Sequence[int] = (), hidden: int = 64, layers: int = 6, heads: int = 4,
                 boundary_layers: int = 2, k: int = 8, global_context: bool = True):
        super().__init__()
        self.dim, self.in_channels, self.k = dim, in_channels, k
        roles = torch.zeros(in_channels, dtype=torch.long)  # 0 interior, 1 boundary values, 2 condition type
        roles[list(boundary_channels)] = 1
        roles[list(type_channels)] = 2
        self.register_buffer("roles", roles, persistent=False)
        self.source_branch = _Branch(dim, in_channels, out_channels, hidden, layers, heads, boundary_layers,
                                     global_context=global_context)
        self.boundary_branch = _Branch(dim, in_channels, out_channels, hidden, layers, heads, boundary_layers,
                                       global_context=global_context)

    @torch.no_grad()
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None,
                inputs: SampleInputs = NO_INPUTS) -> BoundaryGraphs:
        """Graph, boundary set, geometric node features and query interpolation of ONE geometry. Reads
        `inputs.boundary` (required), `normals`, `mesh_edges` (added to the kNN graph) and `sdf_fn` (else the
        distance to the nearest boundary node)."""
        boundary, normals, mesh_edges, sdf_fn = inputs.boundary, inputs.normals, inputs.mesh_edges, inputs.sdf_fn
        pos = torch.as_tensor(pos, dtype=torch.float32)
        queries = pos if queries is None else torch.as_tensor(queries, dtype=torch.float32)
        if pos.shape[1] != self.dim or queries.shape[1] != self.dim:
            raise ValueError(f"this BENO is {self.dim}D; got points {tuple(pos.shape)}")
        self.require(inputs, Need.BOUNDARY)
        if not bool(torch.as_tensor(boundary).any()):
            raise ValueError("BENO needs the boundary nodes of each geometry (a mesh or boundary flags)")
        boundary = torch.as_tensor(boundary, dtype=torch.bool)
        knn = knn_search(pos, min(self.k, len(pos) - 1)).edge_index
        parts = [knn, knn.flip(0)] + ([torch.as_tensor(mesh_edges)] if mesh_edges is not None else [])
        edges = torch.unique(torch.cat(parts, 1), dim=1)
        b_index = torch.nonzero(boundary).flatten()
        near = knn_search(pos[b_index], 1, queries=pos)
        order = torch.argsort(near.edge_index[1])
        closest = pos[b_index][near.edge_index[0][order]]
        gap = closest - pos
        dist = gap.norm(dim=1, keepdim=True)
        direction = torch.where(dist > 0, gap / dist.clamp_min(1e-12), torch.zeros_like(gap))
        signed = -dist if sdf_fn is None else torch.as_tensor(np.asarray(sdf_fn(pos.double().numpy())),
                                                               dtype=torch.float32)[:, None]
        normals = torch.zeros_like(pos) if normals is None else torch.as_tensor(normals, dtype=torch.float32)
        spacing = (pos[edges[1]] - pos[edges[0]]).norm(dim=1).median().clamp_min(1e-12)
        graphs = BoundaryGraphs(pos, torch.zeros(len(pos), dtype=torch.int64), torch.cat([signed, direction], 1),
                                edges, spacing.expand(len(pos)).clone(), b_index, normals[b_index], None, None, 1)
        return self.with_queries(graphs, queries, inputs)

    @torch.no_grad()
    def with_queries(self, graphs: BoundaryGraphs, queries: torch.Tensor,
                     inputs: SampleInputs = NO_INPUTS) -> BoundaryGraphs:
        """`graphs` of ONE geometry with new `queries (M, d)`. The rule off the nodes: a query's value is the
        inverse-distance interpolation of its 3 nearest nodes' values (exact at a node)."""
        device = graphs.pos.device
        queries = torch.as_tensor(queries, dtype=torch.float32)
        if queries.ndim != 2 or queries.shape[1] != self.dim:
            raise ValueError(f"this model is {self.dim}D; got queries {tuple(queries.shape)}")
        return replace(graphs, to_queries=idw_matrix(graphs.pos.cpu(), queries.cpu()).to(device),
                       query_batch=torch.zeros(len(queries), dtype=torch.int64, device=device))

    def branches(self, f: torch.Tensor | None, graphs: BoundaryGraphs) -> tuple[torch.Tensor, torch.Tensor]:
        """Node values `(N, C_out)` of the source branch and of the boundary-data branch."""
        f = graphs.pos.new_zeros((len(graphs.pos), self.in_channels)) if f is None else f
        keep = lambda *roles: f * torch.isin(self.roles, torch.tensor(roles, device=f.device)).to(f.dtype)  # noqa: E731
        source = self.source_branch(keep(0, 2), graphs)
        boundary = self.boundary_branch(keep(1, 2), graphs) - self.boundary_branch(keep(2), graphs)
        return source, boundary

    def encode(self, f: torch.Tensor | None, graphs: BoundaryGraphs) -> torch.Tensor:
        """`(N, C_out)` values at the nodes: everything that does not depend on queries."""
        source, boundary = self.branches(f, graphs)
        return source + boundary

    def decode(self, nodes: torch.Tensor, graphs: BoundaryGraphs) -> torch.Tensor:
        """`(M, C_out)` at the queries, interpolated from the node values (see `with_queries`)."""
        with torch.autocast(graphs.pos.device.type, enabled=False):
            return torch.sparse.mm(graphs.to_queries, nodes.float())


class MeshGNN(BENO):
    """The plain baseline of BENO: one message-passing branch over the same graph and node features, fed all
    input channels, without the boundary transformer. Shapes: forward(f `(N, C_in)` or None, graphs) ->
    `(M, C_out)`."""

    def __init__(self, dim: int, in_channels: int, out_channels: int, hidden: int = 64, layers: int = 6, k: int = 8,
                 global_context: bool = True):
        Operator.__init__(self)
        self.dim, self.in_channels, self.k = dim, in_channels, k
        self.branch = _Branch(dim, in_channels, out_channels, hidden, layers, heads=1, boundary_layers=0,
                              conditioned=False, global_context=global_context)

    def encode(self, f: torch.Tensor | None, graphs: BoundaryGraphs) -> torch.Tensor:
        f = graphs.pos.new_zeros((len(graphs.pos), self.in_channels)) if f is None else f
        return self.branch(f, graphs)
