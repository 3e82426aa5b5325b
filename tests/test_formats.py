"""Every supported format writes and reads back what it holds."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import cKDTree

import geoop
from geoop import Geometry
from geoop.io import FORMATS

MESH_FORMATS = [".vtu", ".vtk", ".msh", ".xdmf", ".npz"]
SURFACE_ONLY = [".stl", ".obj", ".off", ".glb", ".gltf"]


def assert_same_fields(a: Geometry, b: Geometry) -> None:
    assert set(a.point_data) == set(b.point_data)
    for k in a.point_data:
        np.testing.assert_array_equal(a.point_data[k], b.point_data[k])
    assert set(a.cell_data) == set(b.cell_data)
    for k in a.cell_data:
        for t in a.cell_data[k]:
            np.testing.assert_array_equal(a.cell_data[k][t], b.cell_data[k][t])


@pytest.mark.parametrize("ext", MESH_FORMATS)
def test_volume_mesh_with_fields_round_trips_losslessly(fielded_box, tmp_path, ext):
    back = geoop.load(fielded_box.save(tmp_path / f"box{ext}"), sort=False)
    np.testing.assert_array_equal(back.points, fielded_box.points)
    assert back.cells.keys() == fielded_box.cells.keys()
    np.testing.assert_array_equal(back.cells["tetra"], fielded_box.cells["tetra"])
    assert_same_fields(fielded_box, back)


@pytest.mark.parametrize("ext", [".vtu", ".vtk", ".msh", ".xdmf", ".npz", ".ply"])
def test_planar_mesh_comes_back_2d(disk, tmp_path, ext):
    g = disk.with_point_data(u=disk.points[:, 0] ** 2)
    back = geoop.load(g.save(tmp_path / f"disk{ext}"), sort=False)
    assert back.dim == 2 and back.kind == "volume"
    np.testing.assert_array_equal(back.points, g.points)
    np.testing.assert_array_equal(back.point_data["u"], g.point_data["u"])


def test_ply_keeps_faces_vector_and_integer_point_fields(sphere, tmp_path):
    g = sphere.with_point_data(v=sphere.points * 2, label=np.arange(sphere.n_points))
    back = geoop.load(g.save(tmp_path / "s.ply"), sort=False)
    np.testing.assert_array_equal(back.points, g.points)
    np.testing.assert_array_equal(back.cells["triangle"], g.cells["triangle"])
    np.testing.assert_array_equal(back.point_data["v"], g.point_data["v"])
    np.testing.assert_array_equal(back.point_data["label"], g.point_data["label"])


@pytest.mark.parametrize("ext", SURFACE_ONLY)
def test_surface_formats_keep_the_surface(sphere, tmp_path, ext):
    back = geoop.load(sphere.save(tmp_path / f"s{ext}"))
    assert back.n_points == sphere.n_points  # STL's per-triangle corners are merged again
    assert len(back.cells["triangle"]) == len(sphere.cells["triangle"])
    dist, _ = cKDTree(sphere.points).query(back.points)
    assert dist.max() < 1e-6  # STL stores float32
    assert back.is_watertight
    assert back.measure == pytest.approx(sphere.measure, rel=1e-6)


def test_volume_mesh_writes_its_boundary_as_stl(box, tmp_path):
    back = geoop.load(box.save(tmp_path / "b.stl"))
    assert back.kind == "surface" and back.is_watertight
    assert back.measure == pytest.approx(2 * (1 * 2 + 1 * 0.5 + 2 * 0.5), rel=1e-6)


@pytest.mark.parametrize("ext", [".npy", ".npz", ".csv", ".xyz", ".ply", ".vtu"])
def test_point_cloud_with_normals_round_trips(tmp_path, ext):
    rng = np.random.default_rng(0)
    p = rng.normal(size=(500, 3))
    n = p / np.linalg.norm(p, axis=1, keepdims=True)
    fields = {} if ext in (".npy", ".xyz") else {"s": rng.random(500), "w": rng.random((500, 3))}
    g = Geometry(p, point_data=fields, normals=n)
    back = geoop.load(g.save(tmp_path / f"cloud{ext}"), sort=False)
    assert back.kind == "points"
    np.testing.assert_array_equal(back.points, p)
    np.testing.assert_allclose(back.normals, n, rtol=0, atol=1e-15)
    for k, v in fields.items():
        np.testing.assert_array_equal(back.point_data[k], v)


def test_loading_sorts_points_spatially_and_remembers_the_file_order(fielded_box, tmp_path):
    rng = np.random.default_rng(1)
    shuffled = fielded_box.permuted(rng.permutation(fielded_box.n_points))
    path = Geometry(shuffled.points, shuffled.cells, shuffled.point_data, shuffled.cell_data).save(tmp_path / "b.vtu")
    back = geoop.load(path)
    np.testing.assert_array_equal(back.points, shuffled.points[back.source_index])
    np.testing.assert_array_equal(back.point_data["temperature"], shuffled.point_data["temperature"][back.source_index])
    assert back.measure == pytest.approx(fielded_box.measure, rel=1e-12)
    # consecutive points are close: the mean step is far below that of the shuffled order
    step = np.linalg.norm(np.diff(back.points, axis=0), axis=1).mean()
    assert step < 0.5 * np.linalg.norm(np.diff(shuffled.points, axis=0), axis=1).mean()


def test_every_listed_extension_has_a_reader():
    for ext in [".stl", ".obj", ".ply", ".off", ".glb", ".vtu", ".vtk", ".msh", ".xdmf", ".npy", ".npz",
                ".csv", ".xyz"]:
        assert FORMATS[ext].reader is not None, ext


def test_save_is_atomic_and_leaves_no_temporary_files(sphere, tmp_path, monkeypatch):
    from geoop.io import registry

    target = tmp_path / "keep.vtu"
    target.write_text("user data")

    def half_then_crash(geometry, path, **options):
        path.write_text("half a file")
        raise RuntimeError("disk full")

    monkeypatch.setitem(registry.FORMATS, ".vtu", registry.Format("VTU", None, half_then_crash, "test"))
    with pytest.raises(RuntimeError, match="disk full"):
        sphere.save(target)
    assert target.read_text() == "user data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.vtu"]


def test_a_new_format_is_one_reader_and_one_register_call(tmp_path, monkeypatch):
    """A toy format (JSON points with a field `u` and an option `scale`) registered from outside imports as a
    dataset folder through `geoop data import`, with its reader option passed where the format takes it."""
    import json

    from geoop.cli import main
    from geoop.data import read_manifest
    from geoop.io import reader_options, register

    def read_toy(path, scale: float = 1.0) -> Geometry:
        table = json.loads(path.read_text())
        return Geometry(np.array(table["points"]) * scale, point_data={"u": np.array(table["u"])}, source=path)

    monkeypatch.setitem(FORMATS, ".toy", None)  # the registration below ends with the test
    register([".toy"], "toy", read_toy, None, "points and a field u", "cloud", ("scale",))
    rng = np.random.default_rng(0)
    for i in range(5):
        (tmp_path / "runs").mkdir(exist_ok=True)
        p = rng.random((30, 2))
        (tmp_path / "runs" / f"case{i}.toy").write_text(json.dumps({"points": p.tolist(), "u": p[:, 0].tolist()}))
    assert reader_options(tmp_path / "runs" / "case0.toy", scale=2.0, columns="x,y") == {"scale": 2.0}
    assert main(["data", "import", str(tmp_path / "runs"), "--out", str(tmp_path / "data"), "--targets", "u"]) == 0
    assert len(read_manifest(tmp_path / "data").samples) == 5
    from geoop.cli import build_parser

    data_import = build_parser()._subparsers._group_actions[0].choices["data"]._subparsers._group_actions[0]
    assert "TOY" in data_import.choices["import"].format_help().replace("\n", "")  # the help lists it
