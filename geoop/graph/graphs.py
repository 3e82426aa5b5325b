"""Graphs for operators: mesh edges, radius/kNN graphs on one point set, and bipartite graphs between two
sets (points -> latent grid, latent grid -> queries). All return `edge_index (2, E)` int64 with messages
flowing from row 0 (source) to row 1 (target), the PyG convention, sorted by target."""
from __future__ import annotations

import numpy as np
import torch

from geoop.geometry.cells import unique_edges
from geoop.geometry.geometry import Geometry
from geoop.graph.neighbors import Neighbors, knn_search, radius_search


def mesh_edge_index(geometry: Geometry) -> torch.Tensor:
    """Both directions of every cell edge, `(2, 2E)`, sorted by target then source."""
    e = unique_edges(geometry.cells)
    both = np.concatenate([e, e[:, ::-1]])
    both = both[np.lexsort((both[:, 0], both[:, 1]))]
    return torch.from_numpy(np.ascontiguousarray(both.T))


def radius_graph(pos, radius: float, batch=None, loop: bool = False, max_neighbors: int | None = None,
                 backend: str = "auto") -> Neighbors:
    """Edges j -> i for all `|pos_j - pos_i| <= radius` within each sample of `batch`."""
    return radius_search(pos, radius, batch_points=batch, loop=loop, max_neighbors=max_neighbors, backend=backend)


def knn_graph(pos, k: int, batch=None, loop: bool = False, backend: str = "auto") -> Neighbors:
    """Edges j -> i from the k nearest neighbors j of each node i within its sample."""
    return knn_search(pos, k, batch_points=batch, loop=loop, backend=backend)


def bipartite_radius_graph(source, target, radius: float, batch_source=None, batch_target=None,
                           max_neighbors: int | None = None, backend: str = "auto") -> Neighbors:
    """Edges s -> t for every source within `radius` of each target, within the same sample."""
    return radius_search(source, radius, target, batch_points=batch_source, batch_queries=batch_target,
                         max_neighbors=max_neighbors, backend=backend)


def bipartite_knn_graph(source, target, k: int, batch_source=None, batch_target=None,
                        backend: str = "auto") -> Neighbors:
    """Edges s -> t from the k nearest sources of each target, within the same sample."""
    return knn_search(source, k, target, batch_points=batch_source, batch_queries=batch_target, backend=backend)
