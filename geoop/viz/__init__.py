"""Pictures of geometries, fields and training curves (matplotlib, headless)."""
from geoop.viz.curves import plot_history
from geoop.viz.plot import plot_fields, plot_geometry

__all__ = ["plot_fields", "plot_geometry", "plot_history"]
