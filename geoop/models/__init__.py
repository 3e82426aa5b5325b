"""Models: compositions of layers (encoder, backbone, decoder)."""
from geoop.models.gino import GINO, GINOGraphs

__all__ = ["GINO", "GINOGraphs"]
