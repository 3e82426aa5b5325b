"""Graphs and neighbor search (KD-tree on CPU, torch cell list on CPU/CUDA, arithmetic on a lattice's axes,
brute-force reference)."""
from geoop.graph.graphs import (bipartite_graph, bipartite_knn_graph, bipartite_radius_graph, knn_graph,
                                mesh_edge_index, radius_graph)
from geoop.graph.grids import LatentGrid, latent_grids
from geoop.graph.neighbors import Neighbors, knn_search, lattice_radius_search, radius_search

__all__ = ["LatentGrid", "Neighbors", "bipartite_graph", "bipartite_knn_graph", "bipartite_radius_graph",
           "knn_graph", "knn_search", "lattice_radius_search", "latent_grids", "mesh_edge_index", "radius_graph",
           "radius_search"]
