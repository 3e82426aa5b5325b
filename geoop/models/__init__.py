"""Models: compositions of layers (encoder, backbone, decoder)."""
from geoop.models.gino import GINO, GINOGraphs
from geoop.models.gkn import GraphKernelNetwork
from geoop.models.kdfno import KDFNO, KDTransfers

__all__ = ["GINO", "GINOGraphs", "GraphKernelNetwork", "KDFNO", "KDTransfers"]
