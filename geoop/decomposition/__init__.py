"""K-D tree domain decomposition: non-uniform clouds onto per-leaf uniform grids and back (after NUNO)."""
from geoop.decomposition.kdtree import KDTreeDecomposition, uniformity_kl
from geoop.decomposition.transfer import LeafGrids, grid_to_point_matrix, leaf_grids, point_to_grid_matrix

__all__ = ["KDTreeDecomposition", "LeafGrids", "grid_to_point_matrix", "leaf_grids", "point_to_grid_matrix",
           "uniformity_kl"]
