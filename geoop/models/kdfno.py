"""KD-FNO: a K-D tree decomposition feeds one FNO with per-leaf uniform grids (after NUNO's NU-FNO)."""
from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from geoop.decomposition.kdtree import KDTreeDecomposition
from geoop.decomposition.transfer import (MIN_NODES, LeafGrids, grid_to_point_matrix, leaf_grids,
                                          point_to_grid_matrix)
from geoop.graph.structures import Structure, blocks, rows, sample_ids, total
from geoop.layers.fno import FNO
from geoop.models.base import Need, Operator, NO_INPUTS, SampleInputs


def _torch_sparse(matrix: sp.spmatrix) -> torch.Tensor:
    """A scipy matrix as a coalesced torch COO tensor: scipy's canonical CSR (duplicates summed, columns
    sorted) lists its entries in row-major order already, so torch need not sort them (its `coalesce` took
    ~0.17 s a matrix of an airfoil sample; the order is checked by torch's invariants)."""
    csr = sp.csr_matrix(matrix, copy=True)  # sum_duplicates sorts in place: the caller's matrix stays as it was
    csr.sum_duplicates()
    coo = csr.tocoo()
    index = torch.from_numpy(np.stack([coo.row, coo.col]).astype(np.int64))
    return torch.sparse_coo_tensor(index, torch.from_numpy(coo.data).float(), coo.shape, is_coalesced=True,
                                   check_invariants=True)


@dataclass
class KDTransfers(Structure):
    """Precomputed linear maps of one or more geometries: `to_grid (B * G, N)` from input points to the grid
    nodes (the leaves', then the global grid's) and `to_points (M, B * G_leaves)` from the leaf grids to the
    queries (block-diagonal over samples); `query_batch (M,)`; `grid_geo (B * G, 1)` at the grid nodes:
    the signed distance (with `use_sdf`), else whether the node lies in the domain (0/1)."""

    to_grid: torch.Tensor = blocks()
    to_points: torch.Tensor = blocks()
    query_batch: torch.Tensor = sample_ids()
    n_samples: int = total()
    grid_geo: torch.Tensor = rows()


class KDFNO(Operator):
    """Fields at points -> per-leaf grids of a K-D tree (interpolated in the mesh's cells) -> one FNO shared by
    the leaves, each leaf also reading a coarse global grid's FNO -> back to any queries (multilinear in each
    leaf, the overlapping leaves blended by a partition of unity). After NUNO, with the seams closed.

    Each leaf's grid covers its tree cell grown by `overlap` (of the cell's extent, on every inner side) with
    nodes sized to the points the cell holds (`oversample` nodes per point in all), so the leaves' grids differ
    in shape; the FNO's spectral weights are normalised to amplitude and clipped to the modes a leaf has, so
    the same layers serve every leaf, and each leaf is zero-padded by `padding` (at least `min_padding` nodes)
    against the FFT's wrap. The global branch (`global_resolution` nodes along the root box's longest axis, an
    FNO of `global_layers` blocks) gives every leaf the context of the whole domain: its output, read at the leaf
    nodes, is an input of the leaf FNO. Every grid node carries its coordinates in the root box (scaled to
    [-1, 1]) and the geometry's signed distance (with `use_sdf`; without it, whether the node lies in the
    domain): a model with no input fields still sees the shape.

    Args:
        tree: a fitted `KDTreeDecomposition` (one leaf gives the single-grid FNO: no overlap, no global grid).
        in_channels, out_channels: fields in and out. oversample: grid nodes per point in all.
        overlap: how far each leaf's grid reaches into its neighbours, a fraction of its cell.
        hidden, modes, n_layers, padding, min_padding: the FNO. global_resolution, global_layers: the global
        branch (0: none). use_sdf: feed the signed distance at the grid nodes (needs `sdf_fn` in `prepare`).
        symmetries: training augmentation for one grid (`n_subdomains=1`) over a box that the problem family
        maps onto itself: any of "flip_x", "flip_y", "flip_z" (mirror an axis) and "transpose" (swap x and y;
        a square grid). Each training step mirrors the gridded inputs by a random element of the group they
        generate and mirrors the output grid back, which is the network seeing the mirrored problem (the
        grids' node coordinates stay as they are). Valid only where the physics and every field are invariant
        (scalar fields: a Poisson family on a square; not a vector field, whose components would change).
        average_symmetries: with `symmetries`, an evaluation (not training) answers with the mean over every
        element g of the group, `mean_g g^-1 FNO(g x)`: the ensemble of the mirrored problems the network was
        trained on, at |G| passes (8 for both flips and the transpose; poisson2d validation 0.049 -> 0.043).
        `evaluation("single")` turns it off for a block of code (the trainer's per-epoch validation).
    Shapes: forward(f `(N, C_in)`, transfers) -> `(M, C_out)`.
    """

    needs = frozenset({Need.CELLS, Need.SDF})

    def __init__(self, tree: KDTreeDecomposition, in_channels: int, out_channels: int, oversample: float = 1.5,
                 overlap: float = 0.25, hidden: int = 32, modes: int = 12, n_layers: int = 4,
                 padding: float = 0.1, min_padding: int = 4, global_resolution: int = 16, global_layers: int = 2,
                 use_sdf: bool = True, symmetries: Sequence[str] = (), average_symmetries: bool = True):
        super().__init__()
        self.use_sdf, self.out_channels = use_sdf, out_channels
        self.tree = tree
        several = tree.n_leaves > 1
        self.grids = leaf_grids(tree, oversample, overlap if several else 0.0)
        if "transpose" in symmetries and self.grids.n_leaves == 1 and _nearly_square(self.grids):
            self.grids.shapes[0, :2] = self.grids.shapes[0, :2].max()  # a square box's grid, whatever the rounding
        self.global_grids = _global_grid(self.grids, global_resolution) if several and global_resolution else None
        nodes = self._all_nodes()
        lo, hi = self.grids.core_lower.min(0), self.grids.core_upper.max(0)
        coords = (nodes - lo) / np.maximum(hi - lo, 1e-300) * 2 - 1
        self.register_buffer("node_coords", torch.tensor(coords, dtype=torch.float32))
        dim = nodes.shape[1]
        self.symmetries = _check_symmetries(tuple(symmetries), self.grids.leaf_shape(0), self.grids.n_leaves)
        self.average_symmetries = average_symmetries
        node_channels = in_channels + 1 + dim
        fno = dict(hidden=hidden, padding=padding, min_padding=min_padding, clip_modes=True)
        global_channels = 0
        if self.global_grids is not None:
            global_channels = hidden
            self.global_fno = FNO(node_channels, global_channels, (modes,) * dim, n_layers=global_layers, **fno)
            self._global_to_leaves = _torch_sparse(grid_to_point_matrix(self.global_grids, self.grids.nodes()))
        self.fno = FNO(node_channels + global_channels, out_channels, (modes,) * dim, n_layers=n_layers, **fno)

    def _all_nodes(self) -> np.ndarray:
        """`(G, d)` the leaf grids' nodes, then the global grid's."""
        nodes = [self.grids.nodes()] + ([self.global_grids.nodes()] if self.global_grids is not None else [])
        return np.concatenate(nodes)

    def _draw_symmetry(self) -> list[str]:
        """A random element of the group `symmetries` generate, as the ops to apply in order (uniform; the
        global torch generator keeps seeded runs reproducible)."""
        group = group_elements(self.symmetries)
        return group[int(torch.randint(len(group), ()))]

    @torch.no_grad()
    def prepare(self, points: np.ndarray, queries: np.ndarray | None = None,
                inputs: SampleInputs = NO_INPUTS) -> KDTransfers:
        """Interpolation matrices of one geometry `points (N, d)` to its queries `(M, d)` (default: the points),
        once per geometry and reused every epoch. Reads `inputs.cells (K, d + 1)`, the mesh's simplices, which
        say where the domain is (None: the points' Delaunay triangulation, cut by the signed distance where
        given), and `inputs.sdf_fn` (needed with `use_sdf`); the interpolation weighs the points itself."""
        sdf_fn, cells = inputs.sdf_fn, inputs.cells
        points = np.asarray(torch.as_tensor(points).cpu(), dtype=np.float64)
        queries = points if queries is None else np.asarray(torch.as_tensor(queries).cpu(), dtype=np.float64)
        nodes = self._all_nodes()
        if self.use_sdf:
            self.require(inputs, Need.SDF)
        sdf = None if sdf_fn is None else np.asarray(sdf_fn(nodes), dtype=np.float64)
        cells = None if cells is None else np.asarray(cells, dtype=np.int64)
        to_grid, inside = point_to_grid_matrix(points, nodes, cells, None if sdf is None else sdf <= 0)
        # not both: the 0/1 flag beside the distance that says the same made the single-grid FNO ~9% worse
        # (elasticity2d validation, two seeds, 400 CPU-s)
        geo = sdf if self.use_sdf else inside.astype(np.float64)
        transfers = KDTransfers(_torch_sparse(to_grid), None, None, 1,
                                torch.tensor(geo[:, None], dtype=torch.float32))
        return self.with_queries(transfers, queries, inputs)

    @torch.no_grad()
    def with_queries(self, transfers: KDTransfers, queries: np.ndarray,
                     inputs: SampleInputs = NO_INPUTS) -> KDTransfers:
        """`transfers` of ONE geometry with the grids -> queries map of new `queries (M, d)`; the input side
        is shared."""
        device = transfers.to_grid.device
        queries = np.asarray(torch.as_tensor(queries).cpu(), dtype=np.float64)
        to_points = _torch_sparse(grid_to_point_matrix(self.grids, queries)).to(device)
        return replace(transfers, to_points=to_points,
                       query_batch=torch.zeros(len(queries), dtype=torch.int64, device=device))

    def encode(self, f: torch.Tensor | None, transfers: KDTransfers) -> torch.Tensor:
        """`(B * G_leaves, C_out)` output values at every leaf grid node: everything that does not depend on
        queries."""
        b, g = transfers.n_samples, self.grids.n_nodes
        if f is None:
            f = torch.zeros((transfers.to_grid.shape[1], 0), device=transfers.to_grid.device)  # geometry only
        with torch.autocast(f.device.type, enabled=False):  # sparse products stay in float32
            values = torch.sparse.mm(transfers.to_grid, f.float())  # (B * G, C)
        data = torch.cat([values, transfers.grid_geo], dim=1).reshape(b, len(self.node_coords), -1)
        data = torch.cat([data, self.node_coords.expand(b, -1, -1)], dim=2)  # (B, G, C')
        leaves = data[:, :g]
        if self.global_grids is not None:
            coarse = _grid(data[:, g:], self.global_grids.leaf_shape(0))
            context = self.global_fno(coarse).flatten(2)  # (B, H, G_global)
            if self._global_to_leaves.device != context.device:
                self._global_to_leaves = self._global_to_leaves.to(context.device)
            with torch.autocast(context.device.type, enabled=False):  # sparse products stay in float32
                read = torch.sparse.mm(self._global_to_leaves,
                                       context.float().permute(2, 0, 1).reshape(context.shape[2], -1))
            leaves = torch.cat([leaves, read.reshape(g, b, -1).transpose(0, 1).to(leaves.dtype)], dim=2)
        out = leaves.new_empty((b, g, self.out_channels))
        if self.training:
            group = [self._draw_symmetry()]  # no symmetries: the identity
        else:
            group = group_elements(self.symmetries) if self.average_symmetries and self.symmetry_mean else [[]]
        offsets = self.grids.offsets
        for shape, members in _by_shape(self.grids).items():
            x = torch.cat([_grid(leaves[:, offsets[k]:offsets[k + 1]], shape) for k in members])  # (B * n, C, *S)
            y = group_mean(self.fno, x, group).flatten(2).transpose(1, 2)
            for i, k in enumerate(members):
                out[:, offsets[k]:offsets[k + 1]] = y[i * b:(i + 1) * b]
        return out.reshape(b * g, self.out_channels)

    def decode(self, grid_values: torch.Tensor, transfers: KDTransfers) -> torch.Tensor:
        """`(M, C_out)` at the queries, read from the leaf grids."""
        with torch.autocast(grid_values.device.type, enabled=False):  # sparse products stay in float32
            return torch.sparse.mm(transfers.to_points, grid_values.float())


def _grid(rows: torch.Tensor, shape: tuple[int, ...]) -> torch.Tensor:
    """`(B, G, C)` node rows of one grid, row-major -> `(B, C, *shape)`."""
    return rows.transpose(1, 2).reshape(rows.shape[0], rows.shape[2], *shape)


def _by_shape(grids: LeafGrids) -> dict[tuple[int, ...], list[int]]:
    """Leaves grouped by grid shape, so that each group runs through the FNO as one batch."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for k in range(grids.n_leaves):
        groups.setdefault(grids.leaf_shape(k), []).append(k)
    return groups


def _global_grid(grids: LeafGrids, resolution: int) -> LeafGrids:
    """One uniform grid over the root box with `resolution` nodes along its longest axis."""
    lo, hi = grids.core_lower.min(0), grids.core_upper.max(0)
    extent = np.maximum(hi - lo, 1e-12)
    shape = np.maximum(MIN_NODES, np.round((resolution - 1) * extent / extent.max()).astype(int) + 1)
    return LeafGrids(shape[None], lo[None], hi[None], lo[None], hi[None])


SYMMETRIES = {"flip_x": 0, "flip_y": 1, "flip_z": 2, "transpose": None}


def _nearly_square(grids: LeafGrids, tolerance: float = 0.05) -> bool:
    """Whether the first leaf's box has x and y extents within `tolerance` of each other."""
    x, y = (grids.upper[0] - grids.lower[0])[:2]
    return abs(x - y) <= tolerance * max(x, y)


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


def group_elements(symmetries: Sequence[str]) -> list[list[str]]:
    """The elements of the group the mirrors `symmetries` generate, each as the ops to apply in order: the
    2^k subsets in the given order, which for mirrors of a box are its distinct elements (both flips and the
    transpose: the 8 symmetries of a square)."""
    return [[op for op, on in zip(symmetries, draw, strict=True) if on]
            for draw in itertools.product((False, True), repeat=len(symmetries))]


def group_mean(fno: nn.Module, x: torch.Tensor, group: Sequence[Sequence[str]]) -> torch.Tensor:
    """`mean_g g^-1 fno(g x)` over the `group` elements (ops lists) for grids `x (B, C, *S)` -> `(B, C', *S)`;
    each mirror is its own inverse, so g^-1 is g's ops in reverse order."""
    return sum(_apply(fno(_apply(x, ops)), ops[::-1]) for ops in group) / len(group)


def _apply(grid: torch.Tensor, ops: Sequence[str]) -> torch.Tensor:
    """`(B, C, *S)` grid values with the mirror `ops` applied in order on the spatial axes."""
    for op in ops:
        grid = grid.transpose(2, 3) if op == "transpose" else grid.flip(2 + SYMMETRIES[op])
    return grid
