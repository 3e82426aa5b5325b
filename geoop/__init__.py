"""geoop: geometric neural operators on arbitrary geometry.

    >>> import geoop
    >>> g = geoop.load("meshes/plate_with_holes.msh")
    >>> sdf = geoop.signed_distance(g, queries)
    >>> model = geoop.load_model("runs/demo/model.safetensors")
    >>> prediction = model.predict(g, queries)   # a Geometry with the predicted fields
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


def __getattr__(name: str):
    if name == "load_model":  # imported on first use: training pulls in torch-geometric
        from geoop.training.run import load_model

        return load_model
    raise AttributeError(f"module 'geoop' has no attribute {name!r}")


__all__ = ["Geometry", "UnitBoxTransform", "__version__", "contains", "errors", "load", "load_model",
           "quadrature_weights",
           "sample_surface", "sample_volume", "save", "signed_distance"]
