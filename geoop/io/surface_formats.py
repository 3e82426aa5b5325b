"""Triangle surfaces through trimesh: STL, OBJ, OFF, GLB/GLTF. These formats hold no fields."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import trimesh

from geoop.errors import CorruptFileError, GeometryError
from geoop.geometry.geometry import Geometry


def read_surface(path: Path) -> Geometry:
    """Read a triangle surface. STL stores every triangle's corners separately: coincident corners are merged
    so that the point count is the number of distinct vertices. Other formats keep their vertex order."""
    merge = path.suffix.lower() == ".stl"
    loaded = trimesh.load(path, force="mesh", process=False)
    if not isinstance(loaded, trimesh.Trimesh):
        raise CorruptFileError("no triangle mesh found in the file", path=path)
    if merge:
        loaded.merge_vertices(merge_tex=True, merge_norm=True)
    if len(loaded.faces) == 0:
        raise GeometryError("the file holds no triangles", path=path,
                            fix="for a point cloud use PLY without faces, NPY, NPZ, CSV or XYZ")
    return Geometry(np.asarray(loaded.vertices), {"triangle": np.asarray(loaded.faces)}, source=path)


def write_surface(geometry: Geometry, path: Path) -> None:
    """Write the triangle surface (a volume mesh's boundary); fields are not stored by these formats."""
    if geometry.dim != 3 or geometry.kind not in ("surface", "volume"):
        raise GeometryError(f"{path.suffix} holds a 3D triangle surface; this is a {geometry.dim}D "
                            f"{geometry.kind}", path=path, fix="write .vtu, .ply or .npz instead")
    if geometry.point_data or geometry.cell_data:
        warnings.warn(f"{path.name}: {path.suffix} stores no fields; use .vtu, .ply or .npz to keep them", stacklevel=2)
    kind = path.suffix.lower().lstrip(".")
    # a .gltf is one self-contained file only with its buffers embedded (else it points at a .bin beside it)
    options = {"embed_buffers": True} if kind == "gltf" else {}
    geometry.trimesh.export(path, file_type=kind, **options)
