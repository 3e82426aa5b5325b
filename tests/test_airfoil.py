"""airfoil2d: NACA sections by their textbook definitions, forces integrated from surface fields, and RANS
cases solved by OpenFOAM checked against thin-airfoil theory and the solver's own force coefficients."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

import geoop
from geoop import Geometry
from geoop.cli import main
from geoop.data import read_manifest
from geoop.data.generation import generate
from geoop.data.naca import NACA, five_digit_constants, glauert
from geoop.metrics import force_coefficients
from geoop.training import load_config, load_model, train
from tests.conftest import needs_openfoam

# Abbott & von Doenhoff, table of 5-digit mean lines (standard series): designation -> (r, k1)
TABULATED = {"220": (0.1260, 51.64), "230": (0.2025, 15.957), "240": (0.2900, 6.643), "250": (0.3910, 3.230)}


@pytest.mark.parametrize("digits", TABULATED)
def test_five_digit_mean_lines_match_the_tables(digits):
    section = NACA.from_digits(digits + "12")
    r, k1, _ = five_digit_constants(section.design_cl, section.position, section.reflex)
    assert r == pytest.approx(TABULATED[digits][0], rel=5e-3) and k1 == pytest.approx(TABULATED[digits][1], rel=1e-2)


def test_camber_lines_have_their_maximum_where_named_and_reflex_lines_no_moment():
    for digits in ("2412", "6409", "23012", "24112"):
        section = NACA.from_digits(digits)
        assert section.camber_slope(section.position) == pytest.approx(0.0, abs=1e-9)
    reflex = NACA.from_digits("23112")
    a = glauert(reflex.camber_slope, 2, five_digit_constants(0.3, 0.15, True)[0])
    assert np.pi / 4 * (a[2] - a[1]) == pytest.approx(0.0, abs=1e-8)  # c_m about the quarter chord
    assert np.pi * a[1] == pytest.approx(0.3, rel=1e-6)  # the design lift, at the ideal angle


def test_thin_airfoil_lift_of_cambered_and_symmetric_sections():
    assert NACA.from_digits("0012").thin_airfoil_cl(5.0) == pytest.approx(2 * np.pi * np.radians(5.0), rel=1e-9)
    zero_lift = -NACA.from_digits("2412").thin_airfoil_cl(0.0) / (2 * np.pi)
    assert np.degrees(zero_lift) == pytest.approx(-2.08, abs=0.02)  # textbook: -2.08 deg


def test_outline_is_closed_counter_clockwise_with_the_named_thickness():
    outline = NACA.from_digits("0012").surface(200)
    x, y = outline.T
    area = 0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)
    exact = 10 * 0.12 * (0.2969 * 2 / 3 - 0.1260 / 2 - 0.3516 / 3 + 0.2843 / 4 - 0.1036 / 5)  # 2 int y_t dx
    assert area == pytest.approx(exact, rel=1e-4)
    assert 2 * y.max() == pytest.approx(0.12, rel=1e-3) and tuple(outline[0]) == (1.0, 0.0)


def _circle(n: int) -> Geometry:
    t = 2 * np.pi * np.arange(n) / n
    edges = np.stack([np.arange(n), (np.arange(n) + 1) % n], 1)
    return Geometry(np.stack([np.cos(t), np.sin(t)], 1), {"line": edges[:, ::-1]})  # clockwise, on purpose


def test_forces_of_a_linear_pressure_are_the_buoyancy_in_2d_and_3d():
    """-closed integral of p n dA = -volume integral of grad p: p = -y on the unit circle pushes up by pi."""
    circle = _circle(400)
    r = force_coefficients(circle, -circle.points[:, 1], u_inf=[1.0, 0.0], rho=2.0)
    assert r.cl == pytest.approx(np.pi, rel=1e-4) and abs(r.cd) < 1e-10
    sphere = trimesh.creation.icosphere(5)
    g = Geometry(sphere.vertices, {"triangle": sphere.faces[:, ::-1]})
    r = force_coefficients(g, -g.points[:, 2], u_inf=[2.0, 0.0, 0.0], rho=0.5)
    assert r.cl == pytest.approx(4 / 3 * np.pi, rel=1e-3) and abs(r.cd) < 1e-8


def test_shear_counts_along_the_wall_and_potential_flow_has_no_drag():
    circle = _circle(400)
    theta = np.arctan2(circle.points[:, 1], circle.points[:, 0])
    cp = 1 - 4 * np.sin(theta) ** 2  # potential flow past a cylinder: d'Alembert
    r = force_coefficients(circle, cp, u_inf=[1.0, 0.0], rho=2.0)
    assert abs(r.cd) < 1e-6 and abs(r.cl) < 1e-6
    downstream = np.repeat([[1.0, 0.0]], 400, axis=0)  # a uniform pull along the flow: perimeter x 1
    r = force_coefficients(circle, np.zeros(400), downstream, u_inf=[1.0, 0.0], rho=2.0)
    assert r.cd_friction == pytest.approx(2 * np.pi, rel=1e-4) and r.cd_pressure == 0 and abs(r.cl) < 1e-12


@pytest.fixture(scope="module")
def naca0012(tmp_path_factory):
    """NACA 0012 at Re 6e6, 0 and 5 degrees (the solver's default mesh), each case kept as an OpenFOAM folder."""
    root = tmp_path_factory.mktemp("airfoil")
    for alpha in (0.0, 5.0):
        generate("airfoil2d", root / f"alpha{alpha:g}", n=1, section="0012", alpha=alpha, reynolds=6e6,
                 cases=str(root / "cases"), progress=False)
    return root


def _sample(root) -> Geometry:
    return geoop.load(root / read_manifest(root).samples[0]["file"])


@needs_openfoam
def test_naca0012_lift_is_zero_at_zero_incidence_and_thin_airfoil_theory_at_five_degrees(naca0012):
    level, lifted = _sample(naca0012 / "alpha0"), _sample(naca0012 / "alpha5")
    assert bool(level.global_data["converged"]) and bool(lifted.global_data["converged"])
    assert abs(float(level.global_data["cl"])) < 0.02
    assert 0.45 < float(lifted.global_data["cl"]) < 0.65  # thin-airfoil theory 0.548; viscous RANS a little less
    assert 0.005 < float(level.global_data["cd"]) < 0.015


@needs_openfoam
def test_forces_integrated_from_the_stored_surface_match_openfoam(naca0012):
    for case in ("alpha0", "alpha5"):
        g = _sample(naca0012 / case)
        u = g.global_data["freestream"]
        faces = force_coefficients(g, g.cell_data["p"]["line"], g.cell_data["wall_shear"]["line"], u_inf=u,
                                   faces=g.cells["line"])
        nodes = force_coefficients(g, g.point_data["cp"], g.point_data["cf"], u_inf=u / np.linalg.norm(u), rho=2.0,
                                   within=g.point_data["on_airfoil"])
        cl, cd = float(g.global_data["cl"]), float(g.global_data["cd"])
        assert faces.cl == pytest.approx(cl, abs=1e-6) and faces.cd == pytest.approx(cd, rel=1e-5)
        assert nodes.cl == pytest.approx(cl, abs=0.01 * max(abs(cl), 0.1))  # within 1% (of 0.1 at zero lift)
        assert nodes.cd == pytest.approx(cd, rel=0.01)


@needs_openfoam
def test_a_sample_holds_the_graded_volume_and_the_surface(naca0012, capsys):
    g = _sample(naca0012 / "alpha5")
    assert g.dim == 2 and {"U", "p", "nut", "cp", "cf", "on_airfoil", "freestream"} <= set(g.point_data)
    lo, hi = g.bounds
    assert np.allclose(lo, [-2, -1.5], atol=0.05) and np.allclose(hi, [4, 1.5], atol=0.05)
    wall = g.point_data["on_airfoil"]
    assert np.abs(g.point_data["U"][wall]).max() == 0 and (g.point_data["nut"] >= 0).all()
    far = g.points[:, 0] < -1.8
    speed = float(np.linalg.norm(g.global_data["freestream"]))
    assert np.allclose(np.linalg.norm(g.point_data["U"][far], axis=1), speed, rtol=0.03)
    assert main(["data", "info", str(naca0012 / "alpha5")]) == 0
    out = capsys.readouterr().out
    grading = float(out.split("grading p99/p1 ")[1].split("x")[0])
    assert grading >= 100 and "1 of 1 converged" in out and "solver CPU s per case" in out


@needs_openfoam
def test_unconverged_cases_are_kept_flagged_and_out_of_the_splits(tmp_path):
    m = generate("airfoil2d", tmp_path / "ds", n=1, max_iterations=5, section="0012", alpha=2.0, progress=False)
    assert m.unconverged == [0] and m.samples[0]["values"]["converged"] == 0
    assert not any(m.splits.values())


@needs_openfoam
def test_the_cases_import_from_linked_openfoam_folders_and_train(naca0012, tmp_path, capsys):
    """A user's case folders, linked from scratch storage: found through the links, read as 2D meshes."""
    linked = tmp_path / "linked"
    linked.mkdir()
    for case in sorted((naca0012 / "cases").iterdir()):
        (linked / case.name).symlink_to(case, target_is_directory=True)
    (linked / "loop").symlink_to(linked, target_is_directory=True)  # a link back up must not loop
    assert main(["data", "import", str(linked), "--out", str(tmp_path / "data"), "--inputs", "ux,uy",
                 "--targets", "U,p", "--fractions", "0.5,0.5,0"]) == 0
    m = read_manifest(tmp_path / "data")
    assert len(m.samples) == 2 and m.dim == 2 and m.fields["targets"]["U"]["components"] == 2
    with pytest.warns(UserWarning, match="no test split"):
        train(load_config(None, ["train.progress=false", "threads=1", "train.epochs=1", "model.name=transolver",
                                 "model.hidden=16", "model.layers=1", "model.heads=2", "model.slices=8",
                                 "data.scale={U: ux, p: ux^2}", f"data.root={tmp_path / 'data'}",
                                 f"out={tmp_path / 'run'}"]))
    capsys.readouterr()
    case = next(p for p in sorted(linked.iterdir()) if p.name != "loop")
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--geometry", str(case),
                 "--out", str(tmp_path / "pred.vtu")]) == 0
    assert "p: relative L2" in capsys.readouterr().out
    assert geoop.load(tmp_path / "pred.vtu").dim == 2


@needs_openfoam
def test_evaluate_and_predict_report_forces_from_the_predicted_surface(naca0012, tmp_path, capsys):
    """One dataset of the two cases (train on 0 deg, test on 5 deg): a model answering the volume and the
    surface fields, scored on its fields and on the force coefficients integrated from its surface."""
    import shutil

    root = tmp_path / "both"
    (root / "samples").mkdir(parents=True)
    manifest = read_manifest(naca0012 / "alpha0")
    records = []
    for index, case in enumerate(("alpha0", "alpha5")):
        record = read_manifest(naca0012 / case).samples[0]
        shutil.copy(naca0012 / case / record["file"], root / f"samples/sample_{index:06d}.npz")
        records.append({**record, "index": index, "file": f"samples/sample_{index:06d}.npz"})
    manifest.samples, manifest.splits = records, {"train": [0], "val": [], "test": [1]}
    manifest.write(root)
    run = train(load_config(None, ["train.progress=false", "threads=1", "train.epochs=3", "model.name=transolver",
                                   "model.hidden=16", "model.layers=1", "model.heads=2", "model.slices=8",
                                   "data.potential_flow=freestream", "data.scale={U: freestream, p: freestream^2}",
                                   "data.viscosity=1.56e-5",
                                   "data.lift={U: u_potential, p: p_potential, cp: cp_potential, cf: cf_potential}",
                                   f"data.root={root}", f"out={tmp_path / 'run'}"]))
    assert {"u_potential", "cp_potential", "cf_potential"} <= set(load_model(tmp_path / "run").fields.inputs)
    forces = run["test"]["forces"]
    assert set(run["test"]["fields"]) == {"U", "p", "nut", "cp", "cf"} and forces["cl"]["samples"] == 1
    assert np.isfinite(forces["cl"]["mae"]) and run["test"]["forces_vs_solver"]["cd"]["samples"] == 1
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--data", str(root)]) == 0
    assert "cl   mean |error|" in capsys.readouterr().out
    sample = root / "samples" / "sample_000001.npz"
    assert main(["predict", "--checkpoint", str(tmp_path / "run" / "model.safetensors"), "--geometry", str(sample),
                 "--out", str(tmp_path / "pred.vtu")]) == 0
    out = capsys.readouterr().out
    assert "force coefficients from the predicted surface: Cl" in out and "from the input's fields" in out
    assert (tmp_path / "pred_surface.png").is_file()  # cp and cf along the chord, predicted against true


def _outward_midpoints(solution) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    corners = solution.corners
    t = np.diff(corners, axis=0)
    length = np.linalg.norm(t, axis=1)
    normal = np.stack([t[:, 1], -t[:, 0]], 1) / length[:, None]
    return (corners[:-1] + corners[1:]) / 2 + 1e-9 * normal, normal, length


def test_panel_method_gives_the_cylinder_pressure_and_no_flow_through_the_wall():
    from geoop.data.panel_method import closed_outline, solve_panels

    circle = _circle(200)
    loop = closed_outline(circle.points, circle.cells["line"])
    solution = solve_panels(circle.points[loop], np.array([1.0, 0.0]))
    assert solution.gamma == 0.0  # a round body has no trailing edge: no circulation
    where, normal, _ = _outward_midpoints(solution)
    u = solution.velocity(where)
    theta = np.arctan2(where[:, 1], where[:, 0])
    np.testing.assert_allclose(1 - (u**2).sum(1), 1 - 4 * np.sin(theta) ** 2, atol=2e-3)
    assert np.abs((u * normal).sum(1)).max() < 2e-4  # far panels act as points (exact: below 1e-6)
    exact = solution.velocity(where, exact_within=1e9)
    assert np.abs((exact * normal).sum(1)).max() < 1e-6
    np.testing.assert_allclose(solution.velocity(np.array([[40.0, 30.0]])), [[1.0, 0.0]], atol=1e-3)


def test_panel_method_lift_of_naca_sections():
    """NACA 0012 at 5 deg: cl 0.60 (the thickness adds ~10% to thin-airfoil theory's 0.548), by circulation
    and by the surface pressure alike; NACA 2412's zero-lift angle near thin-airfoil theory's -2.1 deg."""
    from geoop.data.panel_method import solve_panels

    stream = np.array([np.cos(np.radians(5)), np.sin(np.radians(5))])
    solution = solve_panels(NACA.from_digits("0012").surface(130), stream)
    where, normal, length = _outward_midpoints(solution)
    cp = 1 - (solution.velocity(where) ** 2).sum(1)
    by_pressure = (-(cp * length)[:, None] * normal).sum(0) @ np.array([-stream[1], stream[0]])
    assert solution.lift_coefficient() == pytest.approx(0.604, abs=0.005)
    assert by_pressure == pytest.approx(solution.lift_coefficient(), rel=5e-3)
    cambered = [solve_panels(NACA.from_digits("2412").surface(130),
                             np.array([np.cos(np.radians(a)), np.sin(np.radians(a))])).lift_coefficient()
                for a in (-3.0, 0.0)]
    zero_lift = -3.0 - 3.0 * cambered[0] / (cambered[1] - cambered[0])
    assert -2.4 < zero_lift < -1.9


@needs_openfoam
def test_potential_flow_inputs_carry_most_of_the_surface_pressure(naca0012):
    from geoop.data.potential_flow import potential_flow_fields

    g = _sample(naca0012 / "alpha5")
    fields = potential_flow_fields(g, "on_airfoil", "freestream")
    wall = g.point_mask("on_airfoil")
    assert np.isfinite(fields["u_potential"]).all() and fields["u_potential"].shape == (g.n_points, 2)
    error = np.linalg.norm(fields["cp_potential"][wall] - g.point_data["cp"][wall]) / np.linalg.norm(
        g.point_data["cp"][wall])
    assert error < 0.2  # inviscid against RANS at 5 deg: no boundary layer, no wake
    far = g.points[:, 0] < -1.8
    speed = np.linalg.norm(g.global_data["freestream"])
    np.testing.assert_allclose(np.linalg.norm(fields["u_potential"][far], axis=1), speed, rtol=0.03)


def test_flat_plate_friction_integrates_to_the_one_seventh_power_law_drag():
    """Along a plate of chord 1 in a uniform stream (stagnation at the leading edge), both sides together:
    C_f = 2 x 0.074 Re^(-1/5), the integral of 0.0592 Re_x^(-1/5)."""
    from geoop.data.panel_method import flat_plate_friction

    x = np.linspace(0.0, 1.0, 2001)
    upper = np.stack([x[::-1], np.full_like(x, 1e-6)], 1)[:-1]  # trailing edge -> leading edge
    lower = np.stack([x, np.full_like(x, -1e-6)], 1)[:-1]       # leading edge -> trailing edge
    loop = np.concatenate([upper, lower])
    velocity = np.tile([1.0, 0.0], (len(loop), 1))
    velocity[len(upper)] = 0.0  # the stagnation point
    cf = flat_plate_friction(loop, velocity, 1.0, viscosity=1 / 4e6)
    step = np.linalg.norm(np.diff(loop, axis=0, append=loop[:1]), axis=1)
    drag = float((cf[:, 0] * step).sum())
    assert drag == pytest.approx(2 * 0.074 * 4e6 ** -0.2, rel=0.02) and np.abs(cf[:, 1]).max() == 0


@needs_openfoam
def test_a_design_meshed_without_its_solve_is_what_uncertainty_selection_scores(naca0012, tmp_path):
    from geoop.data.dataset import SimulationDataset
    from geoop.data.families import get_family
    from geoop.data.families.airfoil2d import section_parameters
    from geoop.training.checkpoint import save_checkpoint
    from geoop.training.config import ModelConfig
    from geoop.training.run import build_operator
    from geoop.training.selection import most_uncertain

    solved = _sample(naca0012 / "alpha5")
    design = {**section_parameters(NACA.from_digits("0012")), "alpha": 5.0, "reynolds": 6e6}
    meshed = get_family("airfoil2d").sample(0, 0, design=design, inputs_only=True)
    # the mesh the solved case has (gmsh's triangles away from the wall may differ by a few in a busy process;
    # the wall's nodes and the boundary layer's quads are fixed) and its free stream; nothing the solver makes
    assert abs(meshed.n_points - solved.n_points) <= 0.005 * solved.n_points
    assert len(meshed.cells["quad"]) == len(solved.cells["quad"])
    wall = lambda g: np.unique(g.points[g.point_data["on_airfoil"] > 0].round(9), axis=0)  # noqa: E731
    np.testing.assert_allclose(wall(meshed), wall(solved), atol=1e-9)
    assert np.allclose(meshed.point_data["freestream"], solved.point_data["freestream"][0])
    assert set(meshed.point_data) == {"freestream", "on_airfoil"}
    # a model with a variance head scores candidates by its estimated error; the pick is the worst one
    operator = build_operator(SimulationDataset(naca0012 / "alpha5", "all"),
                              ModelConfig("transolver", {"hidden": 16, "layers": 1, "heads": 2, "slices": 8}),
                              scale={"U": "freestream", "p": "freestream^2", "nut": "freestream"},
                              uncertainty="variance")
    path = tmp_path / "model.safetensors"
    save_checkpoint(path, operator.state_dict(), {"operator": operator.config()})
    candidates = [design, {**design, "thickness": 0.2, "alpha": -4.0}]
    pick, scores = most_uncertain("airfoil2d", 0, 0, {}, candidates, str(path))
    assert len(scores) == 2 and all(np.isfinite(scores)) and pick == int(np.argmax(scores))
    # (the candidate is meshed afresh: equal to the mesh's reproducibility)
    assert scores[0] == pytest.approx(sum(operator.eval().estimated_errors(meshed).values()), rel=3e-3)
