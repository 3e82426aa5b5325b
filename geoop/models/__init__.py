"""Models: compositions of layers (encoder, backbone, decoder), a registry to pick them by name, and
`FieldOperator`, which wraps one with the normalization that makes it usable on physical data."""
from geoop.models.attention_operators import GNOT, MINO, TokenInputs
from geoop.models.beno import BENO, BoundaryGraphs, MeshGNN
from geoop.models.gino import GINO, GINOGraphs
from geoop.models.gkn import GraphKernelNetwork
from geoop.models.kdfno import KDFNO, KDTransfers
from geoop.models.transolver import PointInputs, Transolver

__all__ = ["BENO", "BoundaryGraphs", "GINO", "GINOGraphs", "GNOT", "GraphKernelNetwork", "KDFNO", "KDTransfers",
           "MINO", "MeshGNN", "PointInputs", "TokenInputs", "Transolver"]
