"""What meshio cannot read, through Kitware's `vtk` wheel (`pip install 'geoop[vtk]'`): VTP surfaces
(polygons, strips, lines, vertices), VTM multiblocks (blocks picked by name and merged), VTU files with
polyhedral cells (decomposed into tetrahedra), and OpenFOAM cases (the internal mesh or chosen patches at the
latest or a chosen time). Writes VTP for surfaces, curves and point clouds.

Every reader hands a `vtkDataSet` to `dataset_to_geometry`, which turns cells of the types geoop knows into
a `meshio.Mesh` (so the conversion to `Geometry` is the one meshio files get) and first splits polygons,
strips, polylines, pixels, voxels and polyhedra into simplices, their cell data copied onto the pieces."""
from __future__ import annotations

import fnmatch
import importlib
import re
from pathlib import Path
from typing import Any

import meshio
import numpy as np

from geoop.errors import CorruptFileError, FieldError, GeoopError
from geoop.geometry.geometry import Geometry
from geoop.io.mesh_formats import from_meshio, to_meshio

#: VTK cell type ids of the linear cells geoop keeps as they are (VTK and meshio share their node order)
KEPT = {1: "vertex", 3: "line", 5: "triangle", 9: "quad", 10: "tetra", 12: "hexahedron", 13: "wedge",
        14: "pyramid"}
INSTALL = "pip install 'geoop[vtk]' (Kitware's vtk wheel)"


#: the VTK modules that hold the classes geoop uses, searched in this order (importing `vtk` itself loads every
#: module of the wheel, rendering included: 0.7 s of a prediction's start, against 0.2 s for the first three)
VTK_MODULES = ("vtkCommonCore", "vtkCommonDataModel", "vtkIOXML", "vtkFiltersCore", "vtkFiltersGeneral",
               "vtkIOGeometry")


class _VtkClasses:
    """VTK's classes and constants by name (`vtk.vtkPoints`), each imported on first use from the first of
    `VTK_MODULES` that holds it (and kept: one instance serves every call of `vtk_module`)."""

    def __getattr__(self, name: str) -> Any:
        for module in VTK_MODULES:
            found = getattr(importlib.import_module(f"vtkmodules.{module}"), name, None)
            if found is not None:
                setattr(self, name, found)
                return found
        raise AttributeError(f"no VTK module of {VTK_MODULES} holds {name}")


_VTK = _VtkClasses()


def vtk_module() -> _VtkClasses:
    """VTK's classes (the wheel's modules geoop uses), or an error that names the extra to install."""
    try:
        from vtkmodules.vtkCommonCore import vtkObject
    except ImportError as e:
        raise GeoopError("reading this file needs the vtk package, which is not installed",
                         fix=INSTALL) from e
    vtkObject.GlobalWarningDisplayOff()  # failures become geoop errors, not lines on stderr
    return _VTK


def _arrays(data, n: int) -> dict[str, np.ndarray]:
    from vtkmodules.util.numpy_support import vtk_to_numpy

    out = {}
    for k in range(data.GetNumberOfArrays()):
        array = data.GetAbstractArray(k)
        if array is None or not array.IsNumeric() or array.GetNumberOfTuples() != n:
            continue
        name = array.GetName() or f"array_{k}"
        out[name] = np.array(vtk_to_numpy(array))
    return out


def dataset_to_geometry(dataset, source: str | Path | None = None) -> Geometry:
    """Any `vtkDataSet` (unstructured grid, polydata, image, ...) -> `Geometry` with its point and cell data."""
    vtk = vtk_module()
    from vtkmodules.util.numpy_support import vtk_to_numpy

    grid = dataset
    if not isinstance(dataset, vtk.vtkUnstructuredGrid):
        append = vtk.vtkAppendFilter()
        append.AddInputData(dataset)
        append.Update()
        grid = append.GetOutput()
    types = _cell_types(grid)
    if not np.isin(types, list(KEPT)).all():  # polygons, polyhedra, strips, ... become simplices
        split = vtk.vtkDataSetTriangleFilter()
        split.SetInputData(grid)
        split.Update()
        grid = split.GetOutput()
        types = _cell_types(grid)
        if not np.isin(types, list(KEPT)).all():
            raise CorruptFileError(f"cells of VTK types {sorted(set(types.tolist()) - set(KEPT))} could not be "
                                   "split into simplices", path=source,
                                   fix="convert them to linear cells first (e.g. ParaView's Tessellate filter)")
    n_points = grid.GetNumberOfPoints()
    if n_points == 0:
        raise CorruptFileError("no points", path=source, fix="check the block/patch selection and the file")
    points = np.array(vtk_to_numpy(grid.GetPoints().GetData()), dtype=np.float64)
    cells, cell_data = [], {}
    if len(types):
        offsets = vtk_to_numpy(grid.GetCells().GetOffsetsArray())
        conn = vtk_to_numpy(grid.GetCells().GetConnectivityArray())
        by_cell = _arrays(grid.GetCellData(), len(types))
        for vtk_id, name in KEPT.items():
            which = np.flatnonzero(types == vtk_id)
            if not len(which):
                continue
            k = offsets[which[0] + 1] - offsets[which[0]]
            starts = offsets[which]
            cells.append((name, conn[starts[:, None] + np.arange(k)].astype(np.int64)))
            for field, values in by_cell.items():
                cell_data.setdefault(field, []).append(values[which])
    mesh = meshio.Mesh(points, cells, point_data=_arrays(grid.GetPointData(), n_points), cell_data=cell_data)
    return _flatten_2d(from_meshio(mesh, source))


def _cell_types(grid) -> np.ndarray:
    """`(C,)` VTK cell type ids of an unstructured grid."""
    from vtkmodules.util.numpy_support import vtk_to_numpy

    if not grid.GetNumberOfCells():
        return np.zeros(0, dtype=np.uint8)
    version = vtk_module().vtkVersion
    new = (version.GetVTKMajorVersion(), version.GetVTKMinorVersion()) >= (9, 6)  # GetCellTypesArray renamed
    return np.asarray(vtk_to_numpy(grid.GetCellTypes() if new else grid.GetCellTypesArray()))


def _flatten_2d(g: Geometry) -> Geometry:
    """VTK stores 3 coordinates; a geometry with z = 0 everywhere and no 3D cells is 2D (as meshio reads it)."""
    if g.dim == 3 and g.n_points and not np.any(g.points[:, 2]) and g.cell_dim < 3:
        return Geometry(g.points[:, :2], g.cells, g.point_data, g.cell_data,
                        None if g.given_normals is None else g.given_normals[:, :2], g.source,
                        global_data=g.global_data)
    return g


def _read_xml(path: Path, reader_class: str):
    vtk = vtk_module()
    reader = getattr(vtk, reader_class)()
    if not reader.CanReadFile(str(path)):
        raise CorruptFileError(f"not a readable {path.suffix} file", path=path,
                               fix="check that the file is complete (ParaView opens it)")
    reader.SetFileName(str(path))
    reader.Update()
    return reader.GetOutput()


def read_vtp(path: Path) -> Geometry:
    """VTK XML polydata: polygons (split into triangles, quads kept), strips, lines, vertices, with data."""
    return dataset_to_geometry(_read_xml(path, "vtkXMLPolyDataReader"), path)


def read_vtu(path: Path) -> Geometry:
    """VTK XML unstructured grid of any cells, polyhedra included (decomposed into tetrahedra)."""
    return dataset_to_geometry(_read_xml(path, "vtkXMLUnstructuredGridReader"), path)


def _leaves(composite, prefix: str = "") -> list[tuple[str, Any]]:
    """(path of names, dataset) of every non-empty leaf of a multiblock, in order."""
    vtk = vtk_module()
    out = []
    for i in range(composite.GetNumberOfBlocks()):
        block = composite.GetBlock(i)
        meta = composite.GetMetaData(i) if composite.HasMetaData(i) else None
        name = (meta.Get(vtk.vtkCompositeDataSet.NAME()) if meta is not None else None) or f"block{i}"
        full = f"{prefix}/{name}" if prefix else name
        if block is None:
            continue
        if block.IsA("vtkMultiBlockDataSet") or block.IsA("vtkMultiPieceDataSet"):
            out += _leaves(block, full)
        elif block.IsA("vtkDataSet") and block.GetNumberOfPoints():
            out.append((full, block))
    return out


def _select(leaves: list[tuple[str, Any]], patterns: str | list[str] | None, path: Path, what: str) -> list:
    """Leaves whose name (or full path) matches one of `patterns` (shell wildcards, or regular expressions)."""
    if patterns is None:
        return leaves
    if isinstance(patterns, str):
        patterns = [p.strip() for p in patterns.split(",") if p.strip()]

    def hit(name: str, pattern: str) -> bool:
        base = name.rsplit("/", 1)[-1]
        if fnmatch.fnmatchcase(base, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
        try:
            return bool(re.fullmatch(pattern, base) or re.fullmatch(pattern, name))
        except re.error:
            return False

    chosen = [(n, b) for n, b in leaves if any(hit(n, p) for p in patterns)]
    if not chosen:
        names = [n for n, _ in leaves]
        raise FieldError(f"no {what} matches {patterns}; there are {names}", path=path,
                         fix="name one as listed (wildcards such as 'motorBike*' and regular expressions work)")
    return chosen


def _merge(blocks: list, path: Path) -> Geometry:
    """The selected blocks as one geometry, points shared between them merged."""
    vtk = vtk_module()
    append = vtk.vtkAppendFilter()
    append.MergePointsOn()
    for _, block in blocks:
        append.AddInputData(block)
    append.Update()
    return dataset_to_geometry(append.GetOutput(), path)


def read_vtm(path: Path, blocks: str | list[str] | None = None) -> Geometry:
    """VTK XML multiblock (`.vtm`/`.vtmb`): the blocks named by `blocks` (wildcards or regular expressions,
    comma-separated; default all), merged into one geometry."""
    return _merge(_select(_leaves(_read_xml(path, "vtkXMLMultiBlockDataReader")), blocks, path, "block"), path)


def is_openfoam_case(folder: Path) -> bool:
    """A folder with `system/controlDict`."""
    return (Path(folder) / "system" / "controlDict").is_file()


def read_openfoam(path: Path, patches: str | list[str] | None = None, time: float | str | None = None,
                  cell_to_point: bool = True, flatten: bool = True) -> Geometry:
    """An OpenFOAM case (its folder, or a `.foam` file in it): the internal mesh, or with `patches` (names,
    wildcards or regular expressions) those boundary patches merged into one surface, at the latest time or
    `time` (`time=0`: the initial conditions, e.g. a meshed case before its solver runs). Cell fields come as
    cell data, and (`cell_to_point`) averaged onto the points by the reader, a
    boundary's points taking its face values. Polyhedral cells are decomposed. A 2D case (a mesh one cell thick
    in z, as OpenFOAM solves 2D problems between two `empty` patches) comes back 2D with `flatten`: see
    `front_plane`."""
    vtk = vtk_module()
    folder = path.parent if path.suffix.lower() in (".foam", ".openfoam") else path
    if not is_openfoam_case(folder):
        raise CorruptFileError("not an OpenFOAM case (no system/controlDict)", path=folder,
                               fix="point at the case folder (the one holding system/, constant/ and the times)")
    reader = vtk.vtkOpenFOAMReader()
    reader.SetFileName(str(path if path.is_file() else folder / f"{folder.name}.foam"))  # it need not exist
    reader.SetCreateCellToPoint(int(cell_to_point))
    reader.UpdateInformation()
    times = reader.GetTimeValues()
    values = [times.GetValue(i) for i in range(times.GetNumberOfTuples())] if times is not None else []
    if not any(t > 0 for t in values) and not (values and time is not None and time != "latest"):
        if (folder / "processor0").is_dir():
            raise FieldError("the case's results are in its processor folders only (a decomposed run)",
                             path=folder, fix="run reconstructPar in the case first")
        raise FieldError(f"the case has no results (times: {values or 'none'})", path=folder,
                         fix="run the solver first (e.g. simpleFoam), or point at a case that ran")
    if time is None or time == "latest":
        at = values[-1]
    else:
        at = float(time)
        if not any(abs(at - t) <= 1e-9 * max(1.0, abs(t)) for t in values):
            raise FieldError(f"no time {time} in the case; times: {values}", path=folder,
                             fix="pass one of the listed times, or leave --time out for the latest")
    names = [reader.GetPatchArrayName(i) for i in range(reader.GetNumberOfPatchArrays())]
    for name in names:
        reader.SetPatchArrayStatus(name, 0)
    if patches is None:
        reader.SetPatchArrayStatus("internalMesh", 1)
    else:
        listed = [(n.split("/", 1)[-1], n) for n in names if n.startswith("patch/")]  # (name, reader's name)
        for _, full in _select(listed, patches, folder, "patch"):
            reader.SetPatchArrayStatus(full, 1)
    reader.UpdateTimeStep(at)
    reader.Update()
    chosen = _leaves(reader.GetOutput())
    if not chosen:
        raise CorruptFileError("the reader returned no cells", path=folder)
    g = _merge(chosen, folder)
    if flatten:
        g = front_plane(g) or g
    return g.with_global_data(time=np.array(at))


#: an extruded cell's front face: (3D type, nodes on the front plane, 2D type)
_EXTRUDED = {"hexahedron": (4, "quad"), "wedge": (3, "triangle"), "quad": (2, "line")}


def front_plane(g: Geometry) -> Geometry | None:
    """The front (z = min) plane of a mesh one cell thick in z, as a 2D geometry; None if `g` is not one.

    Hexahedra become quads, wedges triangles (both wound counter-clockwise), and the side faces of an
    extruded patch (quads) its edges; cell data follow their cells, point data the front plane's points, and
    3-component fields lose their z component (the empty direction of a 2D case)."""
    if g.dim != 3 or not g.cells or set(g.cells) - set(_EXTRUDED):
        return None
    z = g.points[:, 2]
    levels = np.unique(z)
    if len(levels) != 2:
        return None
    front = z == levels[0]
    remap = np.full(len(z), -1)
    remap[front] = np.arange(int(front.sum()))
    points = g.points[front, :2]
    cells = {}
    for kind, nodes in g.cells.items():
        k, shape = _EXTRUDED[kind]
        on_front = front[nodes]
        if not (on_front.sum(1) == k).all():
            return None
        rows = remap[nodes[on_front]].reshape(-1, k)
        cells[shape] = _counter_clockwise(points, rows) if k > 2 else rows
    flat = lambda v: v[..., :2] if v.ndim == 2 and v.shape[1] == 3 else v  # noqa: E731
    cell_data = {name: {_EXTRUDED[kind][1]: flat(values) for kind, values in by_kind.items()}
                 for name, by_kind in g.cell_data.items()}
    point_data = {name: flat(values[front]) for name, values in g.point_data.items()}
    return Geometry(points, cells, point_data, cell_data, source=g.source, global_data=g.global_data)


def _counter_clockwise(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Cells `(C, k)` of convex polygons with their nodes sorted counter-clockwise around their centroid."""
    corner = points[cells]
    offset = corner - corner.mean(1, keepdims=True)
    return np.take_along_axis(cells, np.argsort(np.arctan2(offset[..., 1], offset[..., 0]), axis=1), axis=1)


def write_vtp(geometry: Geometry, path: Path) -> None:
    """Surfaces, curves and point clouds as VTK XML polydata (binary, compressed), point and cell data kept."""
    vtk = vtk_module()
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    if geometry.cell_dim == 3:
        raise GeoopError("a VTP file holds surfaces, curves and points, not volume cells", path=path,
                         fix="write the volume as .vtu (or its boundary surface as .vtp)")
    mesh = to_meshio(geometry)
    poly = vtk.vtkPolyData()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(mesh.points, dtype=np.float64), deep=True))
    poly.SetPoints(points)
    kinds = ("verts", "lines", "polys")  # the order of cells (and cell data) in polydata
    kind_of = {"vertex": "verts", "line": "lines", "triangle": "polys", "quad": "polys", "polygon": "polys"}
    blocks: dict[str, list[int]] = {k: [] for k in kinds}
    for i, block in enumerate(mesh.cells):
        if block.type not in kind_of:
            raise GeoopError(f"{block.type} cells cannot go into a VTP file", path=path, fix="write .vtu instead")
        blocks[kind_of[block.type]].append(i)
    for kind in kinds:
        if not blocks[kind]:
            continue
        rows = [mesh.cells[i].data for i in blocks[kind]]
        sizes = np.concatenate([np.full(len(r), r.shape[1]) for r in rows])
        array = vtk.vtkCellArray()
        array.SetData(numpy_to_vtkIdTypeArray(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64), deep=True),
                      numpy_to_vtkIdTypeArray(np.concatenate([r.ravel() for r in rows]).astype(np.int64), deep=True))
        getattr(poly, "Set" + kind.capitalize())(array)
    for name, value in mesh.point_data.items():
        poly.GetPointData().AddArray(_named(numpy_to_vtk, value, name))
    ordered = [i for kind in kinds for i in blocks[kind]]
    for name, per_block in mesh.cell_data.items():
        poly.GetCellData().AddArray(_named(numpy_to_vtk, np.concatenate([per_block[i] for i in ordered]), name))
    writer = vtk.vtkXMLPolyDataWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(poly)
    writer.SetDataModeToAppended()
    writer.SetCompressorTypeToZLib()
    if not writer.Write():
        raise GeoopError("VTK could not write the file", path=path)


def write_vtu(geometry: Geometry, path: Path) -> None:
    """Meshes and point clouds as VTK XML unstructured grid (binary, appended, zlib at its fastest level),
    point and cell data kept: the same file meshio writes, three times sooner for a million-node grid, whose
    compression at meshio's fixed level took most of the time. VTK reads the arrays in place (no copies of a
    large output). Cells of fixed size only (`can_write_vtu`)."""
    vtk = vtk_module()
    from meshio._vtk_common import meshio_to_vtk_type
    from vtkmodules.util.numpy_support import numpy_to_vtk, numpy_to_vtkIdTypeArray

    mesh = to_meshio(geometry)
    held: list[np.ndarray] = []  # the arrays VTK points into, alive until the file is written

    def shared(values: np.ndarray, name: str | None = None, ids: bool = False):
        values = np.ascontiguousarray(values.reshape(len(values), -1) if name else values)
        held.append(values)
        array = numpy_to_vtkIdTypeArray(values, deep=False) if ids else numpy_to_vtk(values, deep=False)
        if name:
            array.SetName(name)
        return array

    grid = vtk.vtkUnstructuredGrid()
    points = vtk.vtkPoints()
    xyz = np.zeros((len(mesh.points), 3))
    xyz[:, :mesh.points.shape[1]] = mesh.points
    points.SetData(shared(xyz))
    grid.SetPoints(points)
    if mesh.cells:
        sizes = np.concatenate([np.full(len(b.data), b.data.shape[1]) for b in mesh.cells])
        types = np.concatenate([np.full(len(b.data), meshio_to_vtk_type[b.type], dtype=np.uint8) for b in mesh.cells])
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        connectivity = np.concatenate([b.data.ravel() for b in mesh.cells]).astype(np.int64, copy=False)
        array = vtk.vtkCellArray()
        array.SetData(shared(offsets, ids=True), shared(connectivity, ids=True))
        held.append(types)
        grid.SetCells(numpy_to_vtk(types, deep=False, array_type=vtk.VTK_UNSIGNED_CHAR), array)
    for name, value in mesh.point_data.items():
        grid.GetPointData().AddArray(shared(np.asarray(value), name))
    for name, blocks in mesh.cell_data.items():
        grid.GetCellData().AddArray(shared(np.concatenate(blocks), name))
    writer = vtk.vtkXMLUnstructuredGridWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(grid)
    writer.SetDataModeToAppended()
    writer.SetCompressorTypeToZLib()
    writer.SetCompressionLevel(1)
    if not writer.Write():
        raise GeoopError("VTK could not write the file", path=path)


def can_write_vtu(geometry: Geometry) -> bool:
    """Whether `write_vtu` takes this geometry's cells (VTK's fixed-size cell types; not polyhedra)."""
    from meshio._vtk_common import meshio_to_vtk_type

    return all(kind in meshio_to_vtk_type and kind not in ("polygon", "polyhedron") for kind in geometry.cells)


def _named(numpy_to_vtk, value: np.ndarray, name: str):
    value = np.asarray(value)
    if value.dtype == bool:
        value = value.astype(np.uint8)
    array = numpy_to_vtk(np.ascontiguousarray(value.reshape(len(value), -1)), deep=True)
    array.SetName(name)
    return array
