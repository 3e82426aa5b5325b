"""geoop: geometric neural operators on arbitrary geometry.

    >>> import geoop
    >>> g = geoop.load("meshes/plate_with_holes.msh")
    >>> sdf = geoop.signed_distance(g, queries)
"""
from geoop import errors
from geoop.geometry import (
                            Geometry,
                            UnitBoxTransform,
                            contains,
                            quadrature_weights,
                            sample_surface,
                            sample_volume,
                            signed_distance,
)
from geoop.io import load, save

__version__ = "0.1.0"

__all__ = ["Geometry", "UnitBoxTransform", "__version__", "contains", "errors", "load", "quadrature_weights",
           "sample_surface", "sample_volume", "save", "signed_distance"]
