"""Geometry: points, cells, fields, and what is derived from them (boundaries, normals, SDF, weights)."""
from geoop.geometry.geometry import Geometry
from geoop.geometry.normalize import UnitBoxTransform
from geoop.geometry.ordering import morton_order
from geoop.geometry.quadrature import knn_weights, lumped_weights, quadrature_weights
from geoop.geometry.sampling import sample_surface, sample_volume
from geoop.geometry.sdf import contains, distance_function, signed_distance

__all__ = ["Geometry", "UnitBoxTransform", "contains", "distance_function", "knn_weights", "lumped_weights",
           "morton_order",
           "quadrature_weights", "sample_surface", "sample_volume", "signed_distance"]
