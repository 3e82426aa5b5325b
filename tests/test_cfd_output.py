"""CFD output as users have it: VTP surfaces and VTM multiblocks, polyhedral VTU meshes, OpenFOAM case folders
(internal mesh or patches, any time), cell data taken at the cells, Cp on import, predictions written as VTP
with the truth beside them."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import geoop
from geoop import Geometry
from geoop.cli import main
from geoop.data import read_manifest
from geoop.errors import CorruptFileError, FieldError, GeoopError
from geoop.training import load_config, train
from tests.conftest import (CAVITY, box_hexes, needs_openfoam, run_cavity, run_openfoam, sphere_surface,
                            unpacked_tutorial)

vtk = pytest.importorskip("vtk", reason="the vtk extra is not installed (pip install 'geoop[vtk]')")


def _surface_with_fields() -> Geometry:
    s = sphere_surface(2)
    n = len(s.cells["triangle"])
    return Geometry(s.points, s.cells, {"p": s.points[:, 0], "U": s.points * 2},
                    {"wss": {"triangle": np.arange(n, dtype=np.float64)}})


def test_vtp_round_trips_points_polygons_and_point_and_cell_data(tmp_path):
    g = _surface_with_fields()
    back = geoop.load(g.save(tmp_path / "s.vtp"), sort=False)
    assert np.array_equal(back.points, g.points) and np.array_equal(back.cells["triangle"], g.cells["triangle"])
    assert np.array_equal(back.point_data["U"], g.point_data["U"])
    assert np.array_equal(back.cell_data["wss"]["triangle"], g.cell_data["wss"]["triangle"])
    quads = box_hexes(2)
    surface = Geometry(quads.points, {"quad": np.array([[0, 3, 4, 1]]), "line": np.array([[0, 1], [1, 2]])},
                       cell_data={"id": {"quad": np.array([7.0]), "line": np.array([1.0, 2.0])}})
    back = geoop.load(surface.save(tmp_path / "mixed.vtp"), sort=False)
    assert np.array_equal(back.cells["quad"], surface.cells["quad"]) and len(back.cells["line"]) == 2
    assert back.cell_data["id"]["quad"][0] == 7.0 and list(back.cell_data["id"]["line"]) == [1.0, 2.0]
    with pytest.raises(GeoopError, match="write the volume as .vtu"):
        quads.save(tmp_path / "volume.vtp")


def test_polygons_and_strips_of_other_tools_become_triangles(tmp_path):
    """A VTP as ParaView writes it: a hexagon polygon and a triangle strip, with cell data copied to the pieces."""
    points = vtk.vtkPoints()
    for x, y in [(0, 0), (1, 0), (1.5, 0.8), (1, 1.6), (0, 1.6), (-0.5, 0.8), (3, 0), (3, 1), (4, 0), (4, 1)]:
        points.InsertNextPoint(x, y, 0.5)
    poly = vtk.vtkPolyData()
    poly.SetPoints(points)
    polys = vtk.vtkCellArray()
    polys.InsertNextCell(6, [0, 1, 2, 3, 4, 5])
    strips = vtk.vtkCellArray()
    strips.InsertNextCell(4, [6, 7, 8, 9])
    poly.SetPolys(polys)
    poly.SetStrips(strips)
    lines = vtk.vtkCellArray()
    lines.InsertNextCell(3, [6, 8, 9])  # a polyline: two segments
    poly.SetLines(lines)
    tag = vtk.vtkDoubleArray()
    tag.SetName("tag")
    for v in (3.0, 1.0, 2.0):  # polydata order: lines, polygons, strips
        tag.InsertNextValue(v)
    poly.GetCellData().AddArray(tag)
    writer = vtk.vtkXMLPolyDataWriter()
    writer.SetFileName(str(tmp_path / "paraview.vtp"))
    writer.SetInputData(poly)
    writer.Write()
    g = geoop.load(tmp_path / "paraview.vtp")
    assert g.kind == "surface" and len(g.cells["triangle"]) == 4 + 2 and len(g.cells["line"]) == 2
    assert g.summary()["measure"] == pytest.approx(1.5 * 1.6 + 1.0 * 1.0)  # hexagon + the strip's square
    assert sorted(g.cell_data["tag"]["triangle"].tolist()) == [1.0] * 4 + [2.0] * 2
    assert g.cell_data["tag"]["line"].tolist() == [3.0, 3.0]


def test_vtm_blocks_are_picked_by_name_and_merged(tmp_path):
    blocks = vtk.vtkMultiBlockDataSet()
    for i, name in enumerate(["wing_upper", "wing_lower", "farfield"]):
        g = _surface_with_fields()
        g = Geometry(g.points + [3.0 * i, 0, 0], g.cells, g.point_data)
        g.save(tmp_path / f"{name}.vtp")
        reader = vtk.vtkXMLPolyDataReader()
        reader.SetFileName(str(tmp_path / f"{name}.vtp"))
        reader.Update()
        blocks.SetBlock(i, reader.GetOutput())
        blocks.GetMetaData(i).Set(vtk.vtkCompositeDataSet.NAME(), name)
    writer = vtk.vtkXMLMultiBlockDataWriter()
    writer.SetFileName(str(tmp_path / "case.vtm"))
    writer.SetInputData(blocks)
    writer.Write()
    every = geoop.load(tmp_path / "case.vtm")
    wing = geoop.load(tmp_path / "case.vtm", blocks="wing*")
    assert every.n_points == 3 * 162 and wing.n_points == 2 * 162 and set(wing.point_data) == {"p", "U"}
    assert wing.bounds[1, 0] < 5
    with pytest.raises(FieldError, match="no block matches"):
        geoop.load(tmp_path / "case.vtm", blocks="tail*")


def _polyhedral_vtu(path: Path) -> None:
    """Two unit cubes side by side, x in [0, 2]: a hexahedron and the same cube as a polyhedron, with T = x."""
    coords = [(x0 + i, j, k) for x0 in (0, 1) for k in (0, 1) for j in (0, 1) for i in (0, 1)]
    points = vtk.vtkPoints()
    for c in coords:
        points.InsertNextPoint(*c)
    grid = vtk.vtkUnstructuredGrid()
    grid.SetPoints(points)
    first = {c: i for i, c in enumerate(coords[:8])}
    grid.InsertNextCell(vtk.VTK_HEXAHEDRON, 8, [first[c] for c in [(0, 0, 0), (1, 0, 0), (1, 1, 0), (0, 1, 0),
                                                                    (0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 1, 1)]])
    q = {c: 8 + i for i, c in enumerate(coords[8:])}
    faces = [[(1, 0, 0), (1, 1, 0), (2, 1, 0), (2, 0, 0)], [(1, 0, 1), (2, 0, 1), (2, 1, 1), (1, 1, 1)],
             [(1, 0, 0), (2, 0, 0), (2, 0, 1), (1, 0, 1)], [(1, 1, 0), (1, 1, 1), (2, 1, 1), (2, 1, 0)],
             [(1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0)], [(2, 0, 0), (2, 1, 0), (2, 1, 1), (2, 0, 1)]]
    ids = vtk.vtkIdList()
    for v in [len(faces)] + [x for f in faces for x in [len(f)] + [q[c] for c in f]]:
        ids.InsertNextId(v)
    grid.InsertNextCell(vtk.VTK_POLYHEDRON, ids)
    t = vtk.vtkDoubleArray()
    t.SetName("T")
    for c in coords:
        t.InsertNextValue(float(c[0]))
    grid.GetPointData().AddArray(t)
    writer = vtk.vtkXMLUnstructuredGridWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(grid)
    writer.Write()


def test_a_polyhedral_vtu_loads_with_its_fields(tmp_path, monkeypatch):
    _polyhedral_vtu(tmp_path / "poly.vtu")
    g = geoop.load(tmp_path / "poly.vtu", sort=False)
    assert g.kind == "volume" and g.summary()["measure"] == pytest.approx(2.0)
    np.testing.assert_array_equal(g.point_data["T"], g.points[:, 0])
    import builtins

    real_import = builtins.__import__

    def no_vtk(name, *args, **kwargs):
        if name == "vtk" or name.startswith("vtkmodules"):
            raise ImportError("no vtk")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_vtk)
    with pytest.raises(CorruptFileError, match=r"(?s)polyhedral cells.*geoop\[vtk\].*-poly-decomp"):
        geoop.load(tmp_path / "poly.vtu")


def _cavity(folder: Path, lid: float) -> Path:
    """The icoFoam lid-driven cavity with lid speed `lid`, run to its end, with params.json beside it."""
    run_cavity(folder, lid)
    (folder / "params.json").write_text(json.dumps({"lid": lid}))
    return folder


@needs_openfoam
def test_openfoam_cases_import_train_and_predict_to_vtp(tmp_path, capsys):
    cases = tmp_path / "cases"
    for i, lid in enumerate((1.0, 1.5, 2.0, 2.5, 3.0)):
        _cavity(cases / ("held_out" if i == 4 else "") / f"lid{i}", lid)
    internal = geoop.load(cases / "lid0")  # a 2D case (one cell thick, empty front and back) reads as 2D
    assert internal.kind == "volume" and internal.dim == 2 and internal.n_points == 21 * 21
    assert {"U", "p"} <= set(internal.point_data) and internal.point_data["U"].shape == (441, 2)
    assert geoop.load(cases / "lid0", flatten=False).n_points == 2 * 21 * 21
    walls = geoop.load(cases / "lid0", patches="movingWall,fixed*", time=0.3, sort=False)
    assert walls.kind == "curve" and len(walls.cells["line"]) == 80
    assert float(walls.global_data["time"]) == pytest.approx(0.3)
    assert main(["data", "import", str(cases), "--out", str(tmp_path / "data"), "--patches", "*Wall*",
                 "--targets", "p,cp", "--at", "cells", "--cp", "p,1,lid,0", "--test-from",
                 str(cases / "held_out")]) == 0
    m = read_manifest(tmp_path / "data")
    assert len(m.samples) == 5 and len(m.splits["test"]) == 1 and list(m.fields["inputs"]) == ["lid"]
    sample = geoop.load(tmp_path / "data" / m.samples[1]["file"])
    assert sample.n_points == 80 and sample.given_normals is not None  # one point per wall face
    np.testing.assert_allclose(sample.point_data["cp"], sample.point_data["p"] / (0.5 * 1.5**2), rtol=1e-6)
    train(load_config(None, ["train.progress=false", "threads=1", "train.epochs=1", "model.name=transolver",
                             "model.hidden=16", "model.layers=1", "model.heads=2", "model.slices=8",
                             f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'run'}"]))
    capsys.readouterr()
    # the model recalls how its training cases were read: the case folder alone is enough
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--geometry",
                 str(cases / "held_out" / "lid4"), "--out", str(tmp_path / "pred.vtp")]) == 0
    assert "cp: relative L2" in capsys.readouterr().out
    told = re.escape("read with --patches '*Wall*' --at cells --cp p,1,lid,0; this one with patches = 'movingWall'")
    with pytest.warns(UserWarning, match=told):
        main(["predict", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--geometry",
              str(cases / "held_out" / "lid4"), "--patches", "movingWall", "--out", str(tmp_path / "wall.vtp")])
    pred = geoop.load(tmp_path / "pred.vtp", sort=False)  # the wall faces, with the values as cell data
    assert pred.kind == "curve" and len(pred.cells["line"]) == 80 and (tmp_path / "pred.png").is_file()
    assert {"p", "p_true", "p_error", "cp", "cp_true", "lid"} <= set(pred.cell_data)
    assert np.allclose(pred.cell_data["lid"]["line"], 3.0)


@needs_openfoam
def test_openfoam_mistakes_name_the_fix(tmp_path):
    case = _cavity(tmp_path / "case", 1.0)
    with pytest.raises(FieldError, match="(?s)no patch matches.*movingWall"):
        geoop.load(case, patches="inlet")
    with pytest.raises(FieldError, match=r"(?s)no time 7.*0\.5"):
        geoop.load(case, time=7)
    fresh = unpacked_tutorial(CAVITY, tmp_path / "fresh")
    with pytest.raises(GeoopError, match="(?s)no results.*run the solver"):
        geoop.load(fresh)


MOTORBIKE = CAVITY.parents[2] / "simpleFoam" / "motorBike"
BIKE_SURFACE = CAVITY.parents[3] / "resources" / "geometry" / "motorBike.obj.gz"


def _coarse_motorbike(folder: Path, speed: float) -> Path:
    """The snappyHexMesh motorBike tutorial, coarse (surface level 2-3, no layers) and serial, 20 simpleFoam
    iterations at inlet speed `speed`: about 11 s; params.json holds the speed."""
    unpacked_tutorial(MOTORBIKE, folder)
    (folder / "constant" / "triSurface").mkdir(parents=True, exist_ok=True)
    shutil.copy(BIKE_SURFACE, folder / "constant" / "triSurface")
    snappy = folder / "system" / "snappyHexMeshDict"
    snappy.write_text(snappy.read_text().replace("level (5 6);", "level (2 3);").replace(
        "levels ((1E15 4));", "levels ((1E15 2));").replace("level 6;", "level 2;").replace(
        "addLayers       true;", "addLayers       false;"))
    control = folder / "system" / "controlDict"
    text = "\n".join(line for line in control.read_text().splitlines() if "#include" not in line)
    control.write_text(text.replace("endTime         500;", "endTime 20;").replace("writeInterval   100;",
                                                                                 "writeInterval 20;"))
    run_openfoam(folder, "gunzip -f constant/triSurface/motorBike.obj.gz && surfaceFeatureExtract && blockMesh && "
                         "snappyHexMesh -overwrite && cp -r 0.orig/* 0/ && "
                         f"sed -i 's/(20 0 0)/({speed} 0 0)/' 0/include/initialConditions && simpleFoam && "
                         "foamToVTK -latestTime")
    (folder / "params.json").write_text(json.dumps({"U_inf": speed}))
    return folder


@pytest.mark.slow
@needs_openfoam
def test_motorbike_cases_import_train_and_predict_surface_cp(tmp_path, capsys):
    """The issue's user story: snappyHexMesh output (polyhedra) through foamToVTK and as case folders."""
    cases = tmp_path / "cases"
    for i, speed in enumerate((20.0, 25.0, 30.0)):
        _coarse_motorbike(cases / ("held_out" if i == 2 else "") / f"bike{i}", speed)
    internal = next((cases / "bike0" / "VTK").rglob("internal.vtu"))  # polyhedral cells: meshio alone fails
    volume = geoop.load(internal)
    assert volume.kind == "volume" and "p" in volume.point_data
    assert main(["data", "import", str(cases), "--out", str(tmp_path / "data"), "--patches", "motorBike*",
                 "--at", "cells", "--cp", "p,1,U_inf,0", "--targets", "cp", "--test-from",
                 str(cases / "held_out")]) == 0
    train(load_config(None, ["train.progress=false", "threads=1", "train.epochs=1", "model.name=transolver",
                             "model.hidden=16", "model.layers=1", "model.heads=2", "model.slices=8",
                             f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'run'}"]))
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--geometry",
                 str(cases / "held_out" / "bike2"), "--patches", "motorBike*", "--at", "cells", "--cp",
                 "p,1,U_inf,0", "--out", str(tmp_path / "bike2.vtp")]) == 0
    assert "cp: relative L2" in capsys.readouterr().out
    assert {"cp", "cp_true", "cp_error"} <= set(geoop.load(tmp_path / "bike2.vtp").cell_data)
