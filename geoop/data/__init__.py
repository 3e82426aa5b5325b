"""Simulation datasets: generators built on real solvers, the on-disk format, import of a user's own
simulation results, and the loader that turns samples into PyG `Data`."""
from geoop.data.families import FAMILIES, get_family
from geoop.data.generation import generate
from geoop.data.manifest import read_manifest

__all__ = ["FAMILIES", "generate", "get_family", "read_manifest"]
