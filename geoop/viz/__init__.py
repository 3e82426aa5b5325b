"""Pictures of geometries and fields (matplotlib, headless)."""
from geoop.viz.plot import plot_geometry

__all__ = ["plot_geometry"]
