"""geoop: geometric neural operators on arbitrary geometry.

    >>> import geoop
    >>> g = geoop.load("meshes/plate_with_holes.msh")
    >>> sdf = geoop.signed_distance(g, queries)
    >>> model = geoop.load_model("runs/demo/model.safetensors")
    >>> prediction = model.predict(g, queries)   # a Geometry with the predicted fields

The names below are imported on first use, so that `import geoop` (and the `geoop` program, which restarts once
with a quieter heap before it trains) does not pay for trimesh, scipy, torch and torch-geometric up front.
"""
from importlib import import_module
from typing import Any

from geoop import errors

__version__ = "0.1.0"

#: every public name and the module that holds it
_EXPORTS = {"Geometry": "geoop.geometry", "UnitBoxTransform": "geoop.geometry", "contains": "geoop.geometry",
            "quadrature_weights": "geoop.geometry", "sample_surface": "geoop.geometry",
            "sample_volume": "geoop.geometry", "signed_distance": "geoop.geometry", "load": "geoop.io",
            "save": "geoop.io", "load_model": "geoop.training.run"}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'geoop' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["Geometry", "UnitBoxTransform", "__version__", "contains", "errors", "load", "load_model",
           "quadrature_weights", "sample_surface", "sample_volume", "save", "signed_distance"]
