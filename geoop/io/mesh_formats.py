"""Volume/surface meshes with fields through meshio: VTU, VTK, MSH, XDMF and PLY (VTU files meshio cannot
read, such as polyhedral meshes, go to the vtk reader)."""
from __future__ import annotations

import warnings
from pathlib import Path

import meshio
import numpy as np

from geoop.errors import CorruptFileError, FieldError
from geoop.geometry.geometry import Geometry
from geoop.io.fields import join_columns, split_columns

# Bookkeeping that gmsh/meshio add on their own; dropped so that round trips give back what was written.
_BOOKKEEPING = {"gmsh:dim_tags", "gmsh:geometrical", "obj:group_ids", "facet_normals"}
_NORMAL_NAMES = ("Normals", "normals")
_PLY_NORMALS = ("nx", "ny", "nz")


def _native(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in ("=", "|") else a


def _has_polyhedra(path: Path) -> bool:
    """Whether a VTU's XML header declares polyhedron faces (`faces`/`faceoffsets` before VTU 2.3,
    `face_connectivity`/`polyhedron_to_faces` since)."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    head = head.split(b"<AppendedData", 1)[0].lower()
    return any(f'name="{n}"'.encode() in head for n in ("faces", "faceoffsets", "face_connectivity",
                                                         "polyhedron_to_faces"))


def _vtk_installed() -> bool:
    """Whether Kitware's vtk wheel is there (its package alone: importing `vtk` loads every module, 0.7 s)."""
    try:
        import vtkmodules  # noqa: F401
    except ImportError:
        return False
    return True


def read_vtu(path: Path) -> Geometry:
    """A VTU file: through meshio, or through vtk when it is installed and the file holds polyhedral cells (as
    snappyHexMesh makes) or meshio fails on it; without vtk a polyhedral file gets an error saying what to do."""
    polyhedra = _has_polyhedra(path)
    if not (polyhedra and _vtk_installed()):
        try:
            return read_meshio(path)
        except (Exception, SystemExit) as e:  # meshio raises anything on what it cannot take, or exits
            if not _vtk_installed():
                if polyhedra:
                    raise CorruptFileError("the file holds polyhedral cells, which meshio cannot read", path=path,
                                           fix="install the vtk reader: pip install 'geoop[vtk]'; or write the "
                                               "mesh with foamToVTK -poly-decomp (polyhedra decomposed)") from e
                raise
    from geoop.io.vtk_formats import read_vtu as read_with_vtk

    return read_with_vtk(path)


def from_meshio(mesh: meshio.Mesh, source: str | Path | None = None) -> Geometry:
    """meshio.Mesh -> Geometry, merging blocks of the same cell type (and their cell data)."""
    cells: dict[str, list[np.ndarray]] = {}
    cell_data: dict[str, dict[str, list[np.ndarray]]] = {}
    for i, block in enumerate(mesh.cells):
        cells.setdefault(block.type, []).append(block.data)
        for name, arrays in mesh.cell_data.items():
            if name not in _BOOKKEEPING:
                values = _native(arrays[i])
                if not (np.issubdtype(values.dtype, np.floating) and np.isnan(values).all()):
                    cell_data.setdefault(name, {}).setdefault(block.type, []).append(values)
    point_data = {k: _native(v) for k, v in mesh.point_data.items() if k not in _BOOKKEEPING}
    normals = next((point_data.pop(k) for k in _NORMAL_NAMES if k in point_data), None)
    if normals is None and all(k in point_data for k in _PLY_NORMALS):
        normals = np.stack([point_data.pop(k) for k in _PLY_NORMALS], axis=1)
    merged = {t: np.concatenate(c) for t, c in cells.items()}
    if list(merged) == ["vertex"] and np.array_equal(merged["vertex"].ravel(), np.arange(len(mesh.points))):
        merged = {}  # the one-vertex-per-point cells written for bare point clouds (see to_meshio)
        cell_data = {}
    merged_data = {k: {t: np.concatenate(a) for t, a in v.items()} for k, v in cell_data.items()}
    for name, per_type in merged_data.items():
        for t, a in per_type.items():
            if len(a) != len(merged[t]):
                raise FieldError(f"cell field {name!r} covers only some {t} blocks", path=source)
    return Geometry(_native(mesh.points), merged, join_columns(point_data), merged_data, normals, source)


def to_meshio(geometry: Geometry, split_vectors: bool = False) -> meshio.Mesh:
    """Geometry -> meshio.Mesh (2D points padded with z = 0). Cell fields missing on some cell types are
    written as NaN there (and dropped again on reading). A bare point cloud gets one vertex cell per point.
    `split_vectors` (for PLY) writes vector fields and normals as scalar columns."""
    points = geometry.points if geometry.dim == 3 else np.pad(geometry.points, ((0, 0), (0, 1)))
    cells = list(geometry.cells.items())
    if not cells and not split_vectors:  # VTU/VTK need cells to be valid and for ParaView to show points
        cells = [("vertex", np.arange(geometry.n_points).reshape(-1, 1))]
    cell_data = {}
    for name, per_type in geometry.cell_data.items():
        blocks = []
        for t, conn in cells:
            if t in per_type:
                blocks.append(per_type[t])
            else:
                sample = next(iter(per_type.values()))
                if not np.issubdtype(sample.dtype, np.floating):
                    raise FieldError(f"integer cell field {name!r} is missing on {t} cells; the format "
                                     "needs one value per cell of every type", path=geometry.source)
                blocks.append(np.full((len(conn), *sample.shape[1:]), np.nan))
        cell_data[name] = blocks
    point_data = {k: v.astype(np.uint8) if v.dtype == bool else v for k, v in geometry.point_data.items()}
    cell_data = {k: [b.astype(np.uint8) if b.dtype == bool else b for b in blocks] for k, blocks in cell_data.items()}
    if geometry.given_normals is not None:
        n = geometry.given_normals if geometry.dim == 3 else np.pad(geometry.given_normals, ((0, 0), (0, 1)))
        if split_vectors:
            point_data.update(dict(zip(_PLY_NORMALS, n.T, strict=True)))
        else:
            point_data["Normals"] = n
    if split_vectors:
        point_data = split_columns(point_data)
    if geometry.global_data:
        warnings.warn(f"global data {sorted(geometry.global_data)} is kept by .npz files only; not written",
                      stacklevel=2)
    return meshio.Mesh(points, cells, point_data=point_data, cell_data=cell_data)


def read_meshio(path: Path, file_format: str | None = None) -> Geometry:
    return from_meshio(meshio.read(path, file_format=file_format), source=path)


def write_vtu(geometry: Geometry, path: Path, binary: bool = True) -> None:
    """Binary VTU through vtk where it is installed and takes the cells (much faster for large grids, see
    `geoop.io.vtk_formats.write_vtu`), else (and ASCII) through meshio."""
    if binary and _vtk_installed():
        from geoop.io import vtk_formats

        if vtk_formats.can_write_vtu(geometry):
            return vtk_formats.write_vtu(geometry, path)
    meshio.write(path, to_meshio(geometry), file_format="vtu", binary=binary)


def write_vtk(geometry: Geometry, path: Path, binary: bool = True) -> None:
    meshio.write(path, to_meshio(geometry), file_format="vtk", binary=binary)


def write_msh(geometry: Geometry, path: Path) -> None:
    # meshio's ASCII MSH with point data does not read back; binary MSH 4.1 does.
    meshio.write(path, to_meshio(geometry), file_format="gmsh", binary=True)


def write_xdmf(geometry: Geometry, path: Path) -> None:
    # XML data keeps everything in one file (no .h5 beside it), which keeps the write atomic.
    meshio.xdmf.write(path, to_meshio(geometry), data_format="XML")


def write_ply(geometry: Geometry, path: Path, binary: bool = True) -> None:
    keep = {t: c for t, c in geometry.cells.items() if t in ("triangle", "quad", "polygon")}
    if len(keep) != len(geometry.cells) or geometry.cell_data:
        warnings.warn(f"{path.name}: PLY keeps points, faces and point fields; "
                      f"dropping {sorted(set(geometry.cells) - set(keep))} cells and all cell fields", stacklevel=2)
    mesh = to_meshio(Geometry(geometry.points, keep, geometry.point_data, None, geometry.given_normals),
                     split_vectors=True)
    for block in mesh.cells:  # PLY has no 64-bit integers
        block.data = block.data.astype(np.int32)
    for k, v in mesh.point_data.items():
        if v.dtype == np.int64:
            mesh.point_data[k] = v.astype(np.int32)
    meshio.write(path, mesh, file_format="ply", binary=binary)

