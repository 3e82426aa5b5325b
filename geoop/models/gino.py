"""GINO: geometry-informed neural operator = GNO encoder -> FNO on a latent grid -> GNO decoder."""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch

from geoop.graph.graphs import bipartite_graph
from geoop.graph.grids import LatentGrid, latent_grids
from geoop.graph.structures import Structure, index, nested, rows, sample_ids, total
from geoop.graph.neighbors import knn_search
from geoop.layers.fno import FNO
from geoop.layers.kernel_integral import KernelIntegral
from geoop.layers.mlp import MLP
from geoop.errors import NotFittedError
from geoop.models.base import NO_INPUTS, Need, Operator, SampleInputs

if TYPE_CHECKING:
    from geoop.models.registry import DataFacts

log = logging.getLogger(__name__)


@dataclass
class GINOGraphs(Structure):
    """Everything GINO needs besides the input features, computed once per geometry (no gradients) and
    reused every epoch; `collate` joins several samples' graphs into one batch.

    pos `(N, d)` input points and batch `(N,)`; weights `(N,)` their quadrature weights; queries `(M, d)`
    and query_batch `(M,)`; grid the latent grids; grid_sdf `(B * G^d, 1)` or None; in_edges `(2, E_in)`
    points -> grid nodes; out_edges `(2, E_out)` grid nodes -> queries; in_empty/out_empty: targets that had no
    neighbor within the radius (and were given their nearest one); boundary_edges `(2, E_b)` boundary nodes ->
    grid nodes and boundary_weights `(N,)` the nodes' boundary measure (for the boundary-data GNO). The fields
    say how samples join into a batch (see `geoop.graph.structures`)."""

    pos: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    weights: torch.Tensor = rows()
    queries: torch.Tensor = rows()
    query_batch: torch.Tensor = sample_ids()
    grid: LatentGrid = nested()
    grid_sdf: torch.Tensor | None = rows()
    in_edges: torch.Tensor = index("pos", "grid.points")
    out_edges: torch.Tensor = index("grid.points", "queries")
    in_empty: int = total()
    out_empty: int = total()
    boundary_edges: torch.Tensor = index("pos", "grid.points")
    boundary_weights: torch.Tensor = rows()

    @property
    def n_samples(self) -> int:
        return self.grid.n_samples


class GINO(Operator):
    """Geometry-informed neural operator for fields on arbitrary point sets.

        v0 = K_in f                  on a per-sample latent grid (GNO, points -> grid nodes)
        b0 = K_b g                   boundary data g on the grid (GNO, boundary nodes -> grid nodes)
        v = FNO([v0, b0, sdf, grid coordinates])
        u(q) = P(K_out v)(q)         at any query points q (GNO, grid nodes -> queries; P a pointwise MLP)

    Samples of different geometries and sizes share a batch: each gets its own grid over its bounding box,
    and all grids run through the FNO together. Graphs come from `prepare` (once per geometry).

    Boundary data (the values of masked inputs, `boundary_channels`, and their condition-type masks,
    `type_channels`) have a GNO of their own that averages over boundary nodes only, weighted by their boundary
    measure (arc length, area): mixed into the volume average they would fade as the mesh is refined (their
    share of a ball scales with h). The other channels (interior data such as sources and coefficients, and the
    boundary data carried inward, `derived_channels`) enter K_in.

    Args:
        dim: 2 or 3. in_channels: channels of f at the input points (0: geometry only, then the input GNO
        encodes point density with `geometry_channels` kernel-only channels). out_channels: predicted fields.
        resolution: latent grid nodes per axis. hidden, modes, n_layers, rank, padding: the FNO (see `FNO`).
        in_gno_hidden, out_gno_hidden: kernel MLP widths. projection_hidden: width of P.
        boundary_channels, type_channels, derived_channels: input-channel roles (filled from the dataset by the
        registry). boundary_radius_factor: the boundary GNO's radius in latent-grid spacings.
        in_radius, out_radius: GNO radii in the model's coordinates; None sizes them in `fit`, on the first
        training geometry, to `radius_factor` latent-grid spacings (the input radius to at least `radius_factor`
        median point spacings, so sparse clouds still reach the grid). use_sdf: feed the signed distance on the
        grid (needs `sdf_fn` in `prepare`). frequencies: sinusoidal octaves of the kernel's position embedding
        (the finest wavelength is 2^(2-F) coordinate units; keep it above the point spacing for discretization
        invariance).
        fill_empty: "nearest" gives targets without neighbors their nearest source; "none" leaves them 0.
        grid_bounds: "cube" (default), "box" or fixed (lower, upper) corners of every latent grid (see
        `latent_grids`).
    Shapes:
        forward(f `(N, C_in)` or None, graphs) -> `(M, C_out)` at graphs.queries.
    """

    needs = frozenset({Need.WEIGHTS, Need.BOUNDARY, Need.BOUNDARY_WEIGHTS, Need.SDF})

    def __init__(self, dim: int, in_channels: int, out_channels: int, resolution: int = 32, hidden: int = 64,
                 modes: int | Sequence[int] = 16, n_layers: int = 4, rank: int | None = None, padding: float = 0.125,
                 in_gno_hidden: Sequence[int] = (80, 80, 80), out_gno_hidden: Sequence[int] = (512, 256),
                 projection_hidden: int = 256, in_radius: float | None = None, out_radius: float | None = None,
                 radius_factor: float = 1.5, use_sdf: bool = True, frequencies: int = 6, geometry_channels: int = 8,
                 fill_empty: str = "nearest", grid_bounds: str | tuple = "cube", chunk_edges: int = 1 << 20,
                 boundary_channels: Sequence[int] = (), type_channels: Sequence[int] = (),
                 derived_channels: Sequence[int] = (), boundary_radius_factor: float = 2.0):
        super().__init__()
        self.dim, self.in_channels, self.out_channels = dim, in_channels, out_channels
        self.resolution, self.use_sdf, self.fill_empty = resolution, use_sdf, fill_empty
        self.radius_factor, self.grid_bounds = radius_factor, grid_bounds
        self.boundary_radius_factor = boundary_radius_factor
        self.register_buffer("radii", torch.tensor([in_radius or 0.0, out_radius or 0.0], dtype=torch.float64))
        modes = (modes,) * dim if isinstance(modes, int) else tuple(modes)
        on_boundary = sorted((set(boundary_channels) - set(derived_channels)) | set(type_channels))
        interior = [c for c in range(in_channels) if c not in set(on_boundary)]
        self.register_buffer("interior", torch.tensor(interior, dtype=torch.int64), persistent=False)
        self.register_buffer("on_boundary", torch.tensor(on_boundary, dtype=torch.int64), persistent=False)
        gno_channels = len(interior) if interior else geometry_channels
        transform = "linear" if interior else "linear_kernelonly"
        self.in_gno = KernelIntegral(dim, len(interior), gno_channels, radius=in_radius or 1.0, hidden=in_gno_hidden,
                                     transform=transform, reduction="average", frequencies=frequencies,
                                     chunk_edges=chunk_edges)
        self.boundary_gno = None
        if on_boundary:
            self.boundary_gno = KernelIntegral(dim, len(on_boundary), len(on_boundary), radius=1.0,
                                               hidden=in_gno_hidden, transform="linear", reduction="average",
                                               frequencies=frequencies, chunk_edges=chunk_edges, warn_empty=False)
        self.fno = FNO(gno_channels + len(on_boundary) + int(use_sdf) + dim, hidden, modes, hidden=hidden,
                       n_layers=n_layers, rank=rank, padding=padding)
        self.out_gno = KernelIntegral(dim, hidden, hidden, radius=out_radius or 1.0, hidden=out_gno_hidden,
                                      transform="linear", reduction="mean", frequencies=frequencies,
                                      chunk_edges=chunk_edges)
        self.projection = MLP(hidden, [projection_hidden], out_channels)
        self._sync_radii()
        # the radii live in a buffer: loading a state dict (also as part of a larger module) must update the GNOs
        self.register_load_state_dict_post_hook(lambda module, _: module._sync_radii())


    def _sync_radii(self) -> None:
        r_in, r_out = (float(r) for r in self.radii)
        if r_in > 0:
            self.in_gno.radius = r_in
        if r_out > 0:
            self.out_gno.radius = r_out
            if self.boundary_gno is not None:
                self.boundary_gno.radius = r_out * self.boundary_radius_factor / self.radius_factor


    def fit(self, facts: DataFacts) -> GINO:
        """Size the radii left unset (`in_radius`, `out_radius` None) on the first training geometry
        `facts.train_points[0]` (model coordinates): `radius_factor` spacings of its latent grid, the input
        radius at least `radius_factor` median point spacings. Given radii stay as they are."""
        if float(self.radii[0]) and float(self.radii[1]) or not facts.train_points:
            return self
        pos = torch.as_tensor(np.asarray(facts.train_points[0]), dtype=torch.float32)
        grid = latent_grids(pos, torch.zeros(len(pos), dtype=torch.int64), self.resolution, bounds=self.grid_bounds)
        r = self.radius_factor * float(grid.spacing[0])
        point_spacing = float(knn_search(pos, 1).distance.median()) if len(pos) > 1 else 0.0
        self.radii[0] = self.radii[0] if float(self.radii[0]) else max(r, self.radius_factor * point_spacing)
        self.radii[1] = self.radii[1] if float(self.radii[1]) else r
        self._sync_radii()
        log.info("GINO radii sized on the first training geometry: in %.4g, out %.4g (%.2g grid spacings, or "
                 "point spacings where those are wider)", float(self.radii[0]), float(self.radii[1]),
                 self.radius_factor)
        return self

    def check_fitted(self) -> None:
        if not (float(self.radii[0]) and float(self.radii[1])):
            raise NotFittedError("this GINO's radii are not sized yet",
                                 fix="give in_radius and out_radius, or call fit(DataFacts(train_points=...))")

    @torch.no_grad()
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None, inputs: SampleInputs = NO_INPUTS,
                backend: str = "auto") -> GINOGraphs:
        """Grid, SDF and neighbor graphs of ONE geometry `pos (N, d)` (queries default to pos).

        Reads from `inputs`: `weights (N,)`, quadrature weights (default: equal, summing to 1); `sdf_fn`,
        required when `use_sdf`; `boundary_weights (N,)`, the boundary measure of each node (0 inside), for the
        boundary-data GNO (without it the `boundary` flags count 1 each). `backend`: the neighbor search's."""
        self.check_fitted()
        pos = torch.as_tensor(pos, dtype=torch.float32)
        queries = pos if queries is None else torch.as_tensor(queries, dtype=torch.float32)
        if pos.shape[1] != self.dim or queries.shape[1] != self.dim:
            raise ValueError(f"this GINO is {self.dim}D; got points {tuple(pos.shape)}, queries {tuple(queries.shape)}")
        weights = torch.full((len(pos),), 1.0 / len(pos)) if inputs.weights is None else \
            torch.as_tensor(inputs.weights).float()
        batch = torch.zeros(len(pos), dtype=torch.int64)
        grid = latent_grids(pos, batch, self.resolution, bounds=self.grid_bounds)
        in_graph, in_empty = bipartite_graph(pos, grid.points, float(self.radii[0]), fill_empty=self.fill_empty,
                                             backend=backend)
        log.info("latent nodes without input points within r=%.4g: %.1f%%", float(self.radii[0]),
                 100.0 * in_empty / len(grid.points))
        if inputs.boundary_weights is not None:
            measure = torch.as_tensor(inputs.boundary_weights).float()
        else:
            measure = torch.zeros(len(pos)) if inputs.boundary is None else torch.as_tensor(inputs.boundary).float()
        boundary_edges = torch.zeros((2, 0), dtype=torch.int64)
        if self.boundary_gno is not None and bool((measure > 0).any()):
            index = torch.nonzero(measure > 0).flatten()
            graph, _ = bipartite_graph(pos[index], grid.points, self.boundary_gno.radius, fill_empty="none",
                                       backend=backend)
            boundary_edges = torch.stack([index[graph.edge_index[0]], graph.edge_index[1]])
        sdf = None
        if self.use_sdf:
            self.require(inputs, Need.SDF)
            sdf = torch.as_tensor(np.asarray(inputs.sdf_fn(grid.points.double().numpy())), dtype=torch.float32)[:, None]
        none = torch.zeros((2, 0), dtype=torch.int64)
        graphs = GINOGraphs(pos, batch, weights, pos[:0], batch[:0], grid, sdf, in_graph.edge_index, none, in_empty,
                            0, boundary_edges, measure)
        return self.with_queries(graphs, queries, backend=backend)

    @torch.no_grad()
    def with_queries(self, graphs: GINOGraphs, queries: torch.Tensor, inputs: SampleInputs = NO_INPUTS,
                     backend: str = "auto") -> GINOGraphs:
        """`graphs` of ONE geometry with the grid -> query graph of new `queries (M, d)`; the input side
        (grid, SDF, input graphs) is shared. The search runs where the graphs are, by arithmetic on the latent
        grid's axes (`lattice_radius_search`)."""
        grid = graphs.grid
        queries = torch.as_tensor(queries, dtype=torch.float32).to(grid.points.device)
        out_graph, out_empty = bipartite_graph(grid.points, queries, float(self.radii[1]),
                                               fill_empty=self.fill_empty, backend=backend, source_axes=grid.axes())
        if out_empty:
            log.warning("%d of %d query points had no latent node within r=%.4g; %s", out_empty, len(queries),
                        float(self.radii[1]), "each was given its nearest node" if self.fill_empty == "nearest"
                        else "their output will be the projection of 0")
        return replace(graphs, queries=queries, query_batch=torch.zeros(len(queries), dtype=torch.int64,
                                                                        device=queries.device),
                       out_edges=out_graph.edge_index.to(queries.device), out_empty=out_empty)

    def encode(self, f: torch.Tensor | None, graphs: GINOGraphs) -> torch.Tensor:
        """`(B * G^d, hidden)` latent grid values after the FNO: everything that does not depend on queries."""
        grid = graphs.grid
        interior = None if f is None or not len(self.interior) else f[:, self.interior]
        features = [self.in_gno(graphs.pos, grid.points, graphs.in_edges, f_y=interior, weights=graphs.weights)]
        if self.boundary_gno is not None:
            features.append(self.boundary_gno(graphs.pos, grid.points, graphs.boundary_edges,
                                              f_y=f[:, self.on_boundary], weights=graphs.boundary_weights))
        unit = (grid.points - grid.lower[grid.batch]) / (grid.upper - grid.lower)[grid.batch] * 2 - 1
        features += ([graphs.grid_sdf] if self.use_sdf else []) + [unit]
        return grid.from_tensor(self.fno(grid.to_tensor(torch.cat(features, dim=1))))

    def decode(self, latent: torch.Tensor, graphs: GINOGraphs) -> torch.Tensor:
        """`(M, C_out)` at graphs.queries from the latent grid values."""
        return self.projection(self.out_gno(graphs.grid.points, graphs.queries, graphs.out_edges, f_y=latent))
