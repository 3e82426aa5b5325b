"""body3d: the Ahmed body as its drawing defines it, and one coarse RANS case by OpenFOAM (snappyHexMesh,
simpleFoam) checked against the solver's own force coefficients, then imported from its case folder."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree

import geoop
from geoop.cli import main
from geoop.data import read_manifest
from geoop.data.families.body3d import CLEARANCE, CROP, SLANT_LENGTH, U_INF, ahmed_surface
from geoop.data.generation import generate
from geoop.data.meshing import drop_unused_nodes, mesh_with_gmsh
from geoop.geometry.slicing import slice_tetrahedra
from geoop.metrics import force_coefficients
from geoop.viz import plot_fields
from geoop.viz.plot import plot_body_views
from tests.conftest import needs_openfoam

pytest.importorskip("gmsh")


def _ahmed(length=1.044, width=0.389, height=0.288, radius=0.1, slant=25.0, yaw=0.0) -> trimesh.Trimesh:
    points, cells = mesh_with_gmsh(ahmed_surface, length, width, height, radius, slant, yaw, 0.02)
    return trimesh.Trimesh(*drop_unused_nodes(points, cells["triangle"]))


def test_the_ahmed_body_has_its_drawing_dimensions_slant_and_volume():
    length, width, height, radius, slant = 1.044, 0.389, 0.288, 0.1, 25.0
    body = _ahmed(length, width, height, radius, slant)
    assert body.is_watertight
    assert np.allclose(body.bounds, [[0, -width / 2, CLEARANCE], [length, width / 2, CLEARANCE + height]], atol=1e-6)
    rear = body.vertices[np.abs(body.vertices[:, 0] - length) < 1e-9]
    assert rear[:, 2].max() == pytest.approx(CLEARANCE + height - SLANT_LENGTH * np.sin(np.radians(slant)), abs=1e-6)
    a = np.radians(slant)
    wedge = 0.5 * SLANT_LENGTH**2 * np.sin(a) * np.cos(a) * width  # the slant's cut
    fillets = (1 - np.pi / 4) * radius**2 * 2 * (width + height)  # four rounded front edges (corners: O(r^3))
    assert abs(body.volume) == pytest.approx(length * width * height - wedge - fillets, rel=0.01)


def test_yaw_turns_the_body_about_the_vertical_through_its_middle():
    straight, turned = _ahmed(slant=0.0), _ahmed(slant=0.0, yaw=10.0)
    assert abs(turned.volume) == pytest.approx(abs(straight.volume), rel=1e-3)
    assert turned.center_mass == pytest.approx(straight.center_mass, abs=2e-3)
    c, s = np.cos(np.radians(10.0)), np.sin(np.radians(10.0))
    half = np.array([1.044 / 2, 0.389 / 2])
    assert turned.bounds[1, 1] == pytest.approx(abs(s) * half[0] + c * half[1], rel=0.01)


@pytest.fixture(scope="module")
def coarse_case(tmp_path_factory):
    """The baseline body at 25 degrees of slant on the coarsest mesh, the case kept as an OpenFOAM folder."""
    root = tmp_path_factory.mktemp("body3d")
    generate("body3d", root / "data", n=1, length=1.044, width=0.389, height=0.288, radius=0.1, slant=25.0, yaw=0.0,
             cell=0.16, levels=(1, 2), iterations=150, cases=str(root / "cases"), progress=False)
    return root


@needs_openfoam
def test_forces_from_the_stored_surface_match_openfoam_and_drag_is_a_bluff_bodys(coarse_case):
    g = geoop.load(coarse_case / "data" / read_manifest(coarse_case / "data").samples[0]["file"])
    cd, cl, aref = (float(g.global_data[k]) for k in ("cd", "cl", "aref"))
    u = np.array([U_INF, 0.0, 0.0])
    faces = force_coefficients(g, g.cell_data["p"]["triangle"], g.cell_data["wall_shear"]["triangle"], u_inf=u,
                               ref_area=aref, faces=g.cells["triangle"])
    assert faces.cd == pytest.approx(cd, rel=1e-4) and faces.cl == pytest.approx(cl, rel=1e-4)
    # from node values (what a model predicts), by the trapezoidal rule: the sharp rear edges' nodes average the
    # base's suction with the sides' pressure; 12% low on this 8k-cell mesh, 3% at the default resolution
    nodes = geoop.data.families.get_family("body3d").forces.of(g)
    assert 0.8 * cd < nodes.cd < cd and nodes.cl == pytest.approx(cl, rel=0.2)
    # Ahmed et al. measured 0.285 at 25 degrees; this mesh is 8k cells with wall functions: a bluff body's
    # drag, pressure-dominated, but not a validated value (docs/datasets.md has it against resolution)
    assert 0.25 < cd < 0.7 and faces.cd_pressure > 5 * faces.cd_friction > 0
    assert abs(float(g.global_data["cs"])) < 0.02 * cd  # no yaw: no side force


@needs_openfoam
def test_a_sample_holds_the_volume_around_the_body_and_its_surface(coarse_case):
    g = geoop.load(coarse_case / "data" / read_manifest(coarse_case / "data").samples[0]["file"])
    assert g.dim == 3 and {"U", "p", "nut", "cp", "cf", "on_body", "freestream"} <= set(g.point_data)
    box = np.array(CROP)
    assert (g.bounds[0] >= box[:, 0] - 1e-9).all() and (g.bounds[1] <= box[:, 1] + 1e-9).all()
    body = g.point_data["on_body"]
    assert np.abs(g.point_data["U"][body]).max() == 0 and (g.point_data["nut"] >= 0).all()
    ahead = g.points[:, 0] < -0.3
    assert np.allclose(np.linalg.norm(g.point_data["U"][ahead], axis=1), U_INF, rtol=0.1)
    stagnation = g.point_data["cp"][body & (g.points[:, 0] < 0.01) & (np.abs(g.points[:, 1]) < 0.05)]
    assert 0.8 < stagnation.max() < 1.1  # Cp = 1 at the nose's stagnation point, up to the mesh
    triangles = trimesh.Trimesh(g.points, g.cells["triangle"], process=True)
    assert triangles.is_watertight  # the body's faces close it: its forces are well defined


@needs_openfoam
def test_the_case_imports_from_its_folder(coarse_case, tmp_path):
    case = next((coarse_case / "cases").iterdir())
    assert main(["data", "import", str(coarse_case / "cases"), "--out", str(tmp_path / "volume"),
                 "--targets", "U,p", "--fractions", "1,0,0"]) == 0
    assert main(["data", "import", str(case), "--out", str(tmp_path / "surface"), "--patches", "body",
                 "--targets", "p", "--fractions", "1,0,0"]) == 0
    volume, surface = (geoop.load(p / read_manifest(p).samples[0]["file"]) for p in (tmp_path / "volume",
                                                                                         tmp_path / "surface"))
    sample = geoop.load(coarse_case / "data" / read_manifest(coarse_case / "data").samples[0]["file"])
    assert volume.kind == "volume" and volume.dim == 3 and surface.kind == "surface"
    assert volume.n_points >= sample.n_points  # the whole tunnel; the sample keeps the box around the body
    body = sample.points[sample.point_data["on_body"]]
    distance, nearest = cKDTree(surface.points).query(body)
    assert distance.max() < 1e-9 and len(body) == surface.n_points
    assert np.allclose(surface.point_data["p"][nearest], sample.point_data["p"][sample.point_data["on_body"]])


@needs_openfoam
def test_the_mid_plane_section_is_the_tunnel_box_less_the_bodys_profile_and_is_drawn(coarse_case, tmp_path):
    g = geoop.load(coarse_case / "data" / read_manifest(coarse_case / "data").samples[0]["file"])
    cut = slice_tetrahedra(g.points, g.simplices, g.point_data["p"], axis=1, offset=0.0)
    p = cut.points[cut.triangles]
    u, v = p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]
    fluid = 0.5 * np.abs(u[:, 0] * v[:, 1] - u[:, 1] * v[:, 0]).sum()
    (x0, z0), (x1, z1) = cut.points.min(0), cut.points.max(0)  # the kept hexahedra: a rectangle in the plane
    a = np.radians(25.0)
    profile = 1.044 * 0.288 - 0.5 * SLANT_LENGTH**2 * np.sin(a) * np.cos(a) - 2 * (1 - np.pi / 4) * 0.1**2
    assert (x1 - x0) * (z1 - z0) - fluid == pytest.approx(profile, rel=0.1)  # snapped to 4-cm cells
    assert cut.values.min() >= g.point_data["p"].min() and cut.values.max() <= g.point_data["p"].max()
    picture = plot_fields(g, ["p", "cp"], tmp_path / "body.png", body="on_body", on_body={"cp"})
    views = plot_body_views(g.with_point_data(cp_true=g.point_data["cp"]), "on_body", ["cp"], tmp_path / "s.png")
    assert picture.stat().st_size > 20_000 and views.stat().st_size > 20_000
