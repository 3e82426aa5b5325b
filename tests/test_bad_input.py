"""Bad input raises a typed geoop error that names the file and says what to do."""
from __future__ import annotations

import numpy as np
import pytest

import geoop
from geoop import Geometry
from geoop.errors import (
    CorruptFileError,
    FieldError,
    GeometryError,
    GeoopError,
    MissingFileError,
    NotWatertightError,
    UnsupportedFormatError,
)


def test_errors_are_value_errors():
    assert issubclass(GeoopError, ValueError)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="no such file") as e:
        geoop.load(tmp_path / "nope.vtu")
    assert "nope.vtu" in str(e.value) and "fix:" in str(e.value)


def test_unknown_extension_lists_the_supported_ones(tmp_path):
    path = tmp_path / "part.step"
    path.write_text("ISO-10303-21;")
    with pytest.raises(UnsupportedFormatError, match=r"\.vtu") as e:
        geoop.load(path)
    assert "part.step" in str(e.value)


@pytest.mark.parametrize("ext", [".vtu", ".vtk", ".msh", ".stl", ".obj", ".ply", ".npz", ".npy", ".xdmf", ".glb"])
def test_garbage_content_is_a_corrupt_file(tmp_path, ext):
    path = tmp_path / f"broken{ext}"
    path.write_bytes(b"\x00\x01garbage that is no mesh\xff" * 3)
    with pytest.raises(GeoopError) as e:
        geoop.load(path)
    assert f"broken{ext}" in str(e.value)


@pytest.mark.parametrize("ext", [".vtu", ".stl", ".npz", ".ply"])
def test_truncated_file_is_a_corrupt_file(sphere, tmp_path, ext):
    g = sphere if ext == ".stl" else sphere.with_point_data(u=sphere.points[:, 0])  # STL holds no fields
    path = g.save(tmp_path / f"s{ext}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises((CorruptFileError, GeometryError, FieldError)) as e:
        geoop.load(path)
    assert f"s{ext}" in str(e.value)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.vtu"
    path.write_bytes(b"")
    with pytest.raises(CorruptFileError, match="empty.vtu"):
        geoop.load(path)


def test_nan_coordinates_are_refused_with_their_count(tmp_path):
    p = np.random.default_rng(0).random((10, 3))
    p[3, 1] = np.nan
    p[7, 0] = np.inf
    path = tmp_path / "nan.npy"
    np.save(path, p)
    with pytest.raises(GeometryError, match=r"2 of 10 points have NaN/inf.*index 3") as e:
        geoop.load(path)
    assert "nan.npy" in str(e.value)


def test_empty_mesh(tmp_path):
    path = tmp_path / "empty.npy"
    np.save(path, np.zeros((0, 3)))
    with pytest.raises(GeometryError, match="no points"):
        geoop.load(path)


def test_field_length_mismatch_names_the_field(tmp_path):
    path = tmp_path / "cloud.npz"
    np.savez(path, points=np.random.rand(10, 3), pressure=np.random.rand(9))
    with pytest.raises(FieldError, match=r"'pressure'.*\(9,\).*10 points") as e:
        geoop.load(path)
    assert "cloud.npz" in str(e.value)


def test_npz_without_points_lists_its_arrays_and_the_option(tmp_path):
    path = tmp_path / "cloud.npz"
    np.savez(path, pos=np.random.rand(10, 3))
    with pytest.raises(FieldError, match=r"(?s)\[.pos.\].*points_key"):
        geoop.load(path)
    assert geoop.load(path, points_key="pos").n_points == 10


def test_cells_out_of_range():
    with pytest.raises(GeometryError, match="outside"):
        Geometry(np.random.rand(3, 3), {"triangle": [[0, 1, 5]]})


def test_csv_without_coordinate_header(tmp_path):
    path = tmp_path / "pts.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(FieldError, match="x, y"):
        geoop.load(path)


def test_signed_distance_on_an_open_surface_says_how_to_proceed(sphere):
    tris = sphere.cells["triangle"][10:]
    open_surface = Geometry(sphere.points, {"triangle": tris})
    with pytest.raises(NotWatertightError, match="signed=False"):
        geoop.signed_distance(open_surface, np.zeros((1, 3)))
    unsigned = geoop.signed_distance(open_surface, np.zeros((1, 3)), signed=False)
    assert unsigned[0] == pytest.approx(1.0, abs=0.01)


def test_unknown_option_is_named(sphere, tmp_path):
    path = sphere.save(tmp_path / "s.vtu")
    with pytest.raises(GeoopError, match="option"):
        geoop.load(path, points_key="pos")
