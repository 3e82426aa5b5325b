"""KD-FNO: a K-D tree decomposition feeds one FNO with per-leaf uniform grids (NUNO's NU-FNO)."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from geoop.decomposition.kdtree import KDTreeDecomposition
from geoop.decomposition.transfer import grid_to_point_matrix, leaf_grids, point_to_grid_matrix
from geoop.graph.structures import Structure, blocks, rows, sample_ids, total
from geoop.layers.fno import FNO


def _torch_sparse(matrix: sp.spmatrix) -> torch.Tensor:
    coo = matrix.tocoo()
    index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data).float(), coo.shape,
                                   check_invariants=True).coalesce()


@dataclass
class KDTransfers(Structure):
    """Precomputed linear maps of one or more geometries: `to_grid (B * L * G, N)` from input points to the leaf
    grids and `to_points (M, B * L * G)` from the grids to the queries (block-diagonal over samples);
    `query_batch (M,)`; `grid_sdf (B * L * G, 1)` the signed distance at the grid nodes, or None."""

    to_grid: torch.Tensor = blocks()
    to_points: torch.Tensor = blocks()
    query_batch: torch.Tensor = sample_ids()
    n_samples: int = total()
    grid_sdf: torch.Tensor | None = rows(default=None)


class KDFNO(nn.Module):
    """Fields at points -> per-leaf grids (piecewise-linear interpolation) -> one FNO -> back to any queries
    (multilinear interpolation), with the leaves stacked as channels (NUNO) or as a batch.

    Each grid node also carries its coordinates in the tree's root box (scaled to [-1, 1]) and, with `use_sdf`,
    the geometry's signed distance there: without it a model with no input fields would not see the shape.

    Args:
        tree: a fitted `KDTreeDecomposition` (one leaf gives the single-grid interpolation baseline).
        in_channels, out_channels: fields in and out. oversample: grid nodes per point in each leaf.
        hidden, modes, n_layers, padding: the FNO. leaves_as: "channels" or "batch". use_sdf: feed the signed
        distance at the grid nodes (needs `sdf_fn` in `prepare`).
        symmetries: training augmentation for one grid (`n_subdomains=1`) over a box that the problem family
        maps onto itself: any of "flip_x", "flip_y", "flip_z" (mirror an axis) and "transpose" (swap x and y;
        a square grid). Each training step mirrors the gridded inputs by a random element of the group they
        generate and mirrors the output grid back, which is the network seeing the mirrored problem (the
        grids' node coordinates stay as they are). Valid only where the physics and every field are invariant
        (scalar fields: a Poisson family on a square; not a vector field, whose components would change).
    Shapes: forward(f `(N, C_in)`, transfers) -> `(M, C_out)`.
    """

    def __init__(self, tree: KDTreeDecomposition, in_channels: int, out_channels: int, oversample: float = 1.5,
                 hidden: int = 32, modes: int = 12, n_layers: int = 4, padding: float = 0.1,
                 leaves_as: str = "channels", use_sdf: bool = True, symmetries: Sequence[str] = ()):
        super().__init__()
        self.use_sdf = use_sdf
        if leaves_as not in ("channels", "batch"):
            raise ValueError(f"leaves_as must be 'channels' or 'batch', got {leaves_as!r}")
        self.tree, self.grids, self.leaves_as = tree, leaf_grids(tree, oversample), leaves_as
        self.out_channels = out_channels
        nodes = self.grids.nodes()
        lo, hi = nodes.min(0), nodes.max(0)
        coords = (nodes - lo) / np.maximum(hi - lo, 1e-300) * 2 - 1
        self.register_buffer("node_coords", torch.tensor(coords, dtype=torch.float32))
        shape, n_leaves, dim = self.grids.shape, self.grids.n_leaves, nodes.shape[1]
        self.symmetries = _check_symmetries(tuple(symmetries), shape, n_leaves)
        modes_per_axis = tuple(min(modes, s) for s in shape)
        width = n_leaves if leaves_as == "channels" else 1
        self.fno = FNO(width * (in_channels + int(use_sdf) + dim), width * out_channels, modes_per_axis,
                       hidden=hidden,
                       n_layers=n_layers, padding=padding)

    @property
    def needs(self) -> frozenset[str]:
        """What `prepare` takes from a sample (see `geoop.models.registry`)."""
        return frozenset({"sdf"} if self.use_sdf else ())

    def _draw_symmetry(self) -> list[str]:
        """A random element of the group `symmetries` generate, as the ops to apply in order (each with
        probability 1/2; the global torch generator keeps seeded runs reproducible)."""
        draws = torch.randint(0, 2, (len(self.symmetries),)).tolist()
        return [op for op, on in zip(self.symmetries, draws, strict=True) if on]

    @torch.no_grad()
    def prepare(self, points: np.ndarray, weights: torch.Tensor | None = None, queries: np.ndarray | None = None,
                sdf_fn: Callable | None = None, **unused: Any) -> KDTransfers:
        """Interpolation matrices of one geometry `points (N, d)` to its queries `(M, d)` (default: the points),
        once per geometry and reused every epoch. `sdf_fn`: signed distance at `(K, d)` numpy points (needed
        with `use_sdf`). `weights` and the other per-geometry inputs of the common interface (boundary flags,
        normals, mesh edges) are not used (the Delaunay interpolation weighs the points itself)."""
        points = np.asarray(torch.as_tensor(points).cpu(), dtype=np.float64)
        queries = points if queries is None else np.asarray(torch.as_tensor(queries).cpu(), dtype=np.float64)
        nodes = self.grids.nodes()
        sdf = None
        if self.use_sdf:
            if sdf_fn is None:
                raise ValueError("this KDFNO uses the SDF on its grids: pass sdf_fn, or build it with use_sdf=False")
            sdf = torch.as_tensor(np.asarray(sdf_fn(nodes)), dtype=torch.float32)[:, None]
        inputs = KDTransfers(_torch_sparse(point_to_grid_matrix(points, nodes)), None, None, 1, sdf)
        return self.with_queries(inputs, queries)

    @torch.no_grad()
    def with_queries(self, transfers: KDTransfers, queries: np.ndarray, **unused: Any) -> KDTransfers:
        """`transfers` of ONE geometry with the grids -> queries map of new `queries (M, d)`; the input side
        is shared."""
        device = transfers.to_grid.device
        queries = np.asarray(torch.as_tensor(queries).cpu(), dtype=np.float64)
        to_points = _torch_sparse(grid_to_point_matrix(self.tree, self.grids, queries)).to(device)
        return replace(transfers, to_points=to_points,
                       query_batch=torch.zeros(len(queries), dtype=torch.int64, device=device))

    def encode(self, f: torch.Tensor | None, transfers: KDTransfers) -> torch.Tensor:
        """`(B * L * G, C_out)` output values at every leaf grid node: everything that does not depend on
        queries."""
        b, n_leaves, shape = transfers.n_samples, self.grids.n_leaves, self.grids.shape
        g = self.grids.nodes_per_leaf
        if f is None:
            f = torch.zeros((transfers.to_grid.shape[1], 0), device=transfers.to_grid.device)  # geometry only
        with torch.autocast(f.device.type, enabled=False):  # sparse products stay in float32
            values = torch.sparse.mm(transfers.to_grid, f.float())  # (B * L * G, C)
        extra = [transfers.grid_sdf] if self.use_sdf else []
        data = torch.cat([values, *extra], dim=1).reshape(b, n_leaves, g, -1).permute(0, 1, 3, 2)  # (B, L, C, G)
        ops = self._draw_symmetry() if self.training and self.symmetries else []
        data = _apply(data, ops, shape)
        coords = self.node_coords.reshape(1, n_leaves, g, -1).permute(0, 1, 3, 2).expand(b, -1, -1, -1)
        h = torch.cat([data, coords], dim=2)  # (B, L, C', G)
        if self.leaves_as == "channels":
            out = self.fno(h.reshape(b, -1, *shape)).reshape(b, n_leaves, self.out_channels, g)
        else:
            out = self.fno(h.reshape(b * n_leaves, -1, *shape)).reshape(b, n_leaves, self.out_channels, g)
        out = _apply(out, ops[::-1], shape)  # each op is its own inverse
        return out.permute(0, 1, 3, 2).reshape(b * n_leaves * g, self.out_channels)

    def decode(self, grid_values: torch.Tensor, transfers: KDTransfers) -> torch.Tensor:
        """`(M, C_out)` at the queries, interpolated from the grid values."""
        with torch.autocast(grid_values.device.type, enabled=False):  # sparse products stay in float32
            return torch.sparse.mm(transfers.to_points, grid_values.float())

    def forward(self, f: torch.Tensor | None, transfers: KDTransfers) -> torch.Tensor:
        return self.decode(self.encode(f, transfers), transfers)


SYMMETRIES = {"flip_x": 0, "flip_y": 1, "flip_z": 2, "transpose": None}


def _check_symmetries(symmetries: tuple[str, ...], shape: tuple[int, ...], n_leaves: int) -> tuple[str, ...]:
    unknown = [o for o in symmetries if o not in SYMMETRIES]
    if unknown:
        raise ValueError(f"unknown symmetries {unknown}; choose from {list(SYMMETRIES)}")
    if symmetries and n_leaves != 1:
        raise ValueError("symmetries need one grid (n_subdomains=1): the tree's cuts are not symmetric")
    if any(SYMMETRIES[o] is not None and SYMMETRIES[o] >= len(shape) for o in symmetries):
        raise ValueError(f"a {len(shape)}D grid has no axis for {symmetries}")
    if "transpose" in symmetries and shape[0] != shape[1]:
        raise ValueError(f"transpose needs a square grid in x and y, got {shape}")
    return symmetries


def _apply(grid: torch.Tensor, ops: Sequence[str], shape: tuple[int, ...]) -> torch.Tensor:
    """`(B, L, C, G)` grid values with the mirror `ops` applied in order on the spatial axes `shape`."""
    if not ops:
        return grid
    b, leaves, c, g = grid.shape
    x = grid.reshape(b, leaves, c, *shape)
    for op in ops:
        x = x.transpose(3, 4) if op == "transpose" else x.flip(3 + SYMMETRIES[op])
    return x.reshape(b, leaves, c, g)
