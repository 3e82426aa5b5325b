"""The reference solvers behind the datasets: manufactured solutions converge at the expected rates, boundary
data is met, symmetric problems give symmetric fields, stored samples satisfy the discrete equations."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("gmsh", reason="the generators need gmsh (pip install 'geoop[data]')")
skfem = pytest.importorskip("skfem", reason="the generators need scikit-fem (pip install 'geoop[data]')")
sympy = pytest.importorskip("sympy")

from matplotlib.tri import LinearTriInterpolator, Triangulation  # noqa: E402

from geoop.data.families import elasticity2d, poisson2d, potential3d  # noqa: E402
from geoop.data.meshing import drop_unused_nodes, mesh_with_gmsh  # noqa: E402

X, Y = sympy.symbols("x y")


def rates(errors: list[float]) -> np.ndarray:
    return np.log2(np.array(errors[:-1]) / np.array(errors[1:]))


def triangles_of(pts: np.ndarray, cells: dict) -> tuple[np.ndarray, np.ndarray]:
    return drop_unused_nodes(pts[:, :2], cells["triangle"])


# ------------------------------------------------------------------ poisson2d (P1)
HOLES = np.array([[0.3, 0.3, 0.12], [0.7, 0.62, 0.15]])


def poisson_error(h: float) -> float:
    u = sympy.sin(2 * X) * sympy.cos(3 * Y) + X**2
    k = 1 + X * Y
    f = -(sympy.diff(k * sympy.diff(u, X), X) + sympy.diff(k * sympy.diff(u, Y), Y))
    lam = lambda e: sympy.lambdify((X, Y), e, "numpy")  # noqa: E731
    u_, k_, f_, ux, uy = lam(u), lam(k), lam(f), lam(sympy.diff(u, X)), lam(sympy.diff(u, Y))
    p, t = triangles_of(*mesh_with_gmsh(poisson2d.build_domain, HOLES, h))
    x, y = p.T
    nearest = np.argmin([np.hypot(x - cx, y - cy) - r for cx, cy, r in HOLES], axis=0)
    normal = -(p - HOLES[nearest, :2]) / np.hypot(*(p - HOLES[nearest, :2]).T)[:, None]  # out of the domain
    flux = k_(x, y) * (ux(x, y) * normal[:, 0] + uy(x, y) * normal[:, 1])
    mesh = skfem.MeshTri(p.T.copy(), t.T.copy())
    dirichlet, neumann = poisson2d.boundary_facets(mesh)
    uh = poisson2d.solve(p, t, k_(x, y) + 0 * x, f_(x, y) + 0 * x, u_(x, y), flux, dirichlet, neumann)
    basis = skfem.Basis(mesh, skfem.ElementTriP1())
    err = skfem.Functional(lambda w: (w["uh"] - u_(w.x[0], w.x[1])) ** 2).assemble(basis, uh=basis.interpolate(uh))
    return float(np.sqrt(err))


def test_poisson_p1_converges_at_second_order():
    errors = [poisson_error(h) for h in (0.08, 0.04, 0.02)]
    assert errors[-1] < 1e-3
    assert np.all(rates(errors) > 1.7), errors


def test_poisson_sample_satisfies_its_discrete_equations_and_boundary_data():
    g = poisson2d.FAMILY.sample(seed=3, index=0)
    pd = g.point_data
    mesh = skfem.MeshTri(g.points.T.copy(), g.cells["triangle"].T.copy())
    dirichlet, neumann = poisson2d.boundary_facets(mesh)
    basis = skfem.Basis(mesh, skfem.ElementTriP1())
    from skfem.helpers import dot, grad

    K = skfem.BilinearForm(lambda u, v, w: w["k"] * dot(grad(u), grad(v))).assemble(basis, k=basis.interpolate(pd["k"]))
    load = skfem.LinearForm(lambda v, w: w["f"] * v)
    F = load.assemble(basis, f=basis.interpolate(pd["f"]))
    fb = skfem.FacetBasis(mesh, skfem.ElementTriP1(), facets=neumann)
    F = F + load.assemble(fb, f=fb.interpolate(pd["flux"]))
    residual = K @ pd["u"] - F
    free = ~pd["dirichlet"]
    assert np.abs(residual[free]).max() < 1e-9 * np.abs(F).max()
    np.testing.assert_array_equal(pd["u"][pd["dirichlet"]], pd["g"][pd["dirichlet"]])
    assert pd["dirichlet"].sum() > 50 and pd["neumann"].sum() > 20


def test_poisson_symmetric_problem_gives_a_symmetric_solution():
    p, t = triangles_of(*mesh_with_gmsh(poisson2d.build_domain, np.array([[0.5, 0.5, 0.2]]), 0.02))
    x, y = p.T
    mesh = skfem.MeshTri(p.T.copy(), t.T.copy())
    dirichlet, neumann = poisson2d.boundary_facets(mesh)
    u = poisson2d.solve(p, t, 1 + (x - 0.5) ** 2, 4 + 0 * x, np.sin(np.pi * y) * (1 + (x - 0.5) ** 2), 0.5 + 0 * x,
                        dirichlet, neumann)
    mirrored = LinearTriInterpolator(Triangulation(x, y, t), u)(1 - x, y)
    assert np.abs(mirrored - u).max() < 2e-3 * np.abs(u).max()


# ------------------------------------------------------------------ elasticity2d (P2)
def elasticity_error(h: float) -> float:
    lam_, mu_ = elasticity2d.lame()
    u = sympy.Matrix([0.1 * sympy.sin(np.pi * X) * Y, 0.1 * X**2 * sympy.cos(np.pi * Y)])
    grad = u.jacobian([X, Y])
    eps = (grad + grad.T) / 2
    sigma = lam_ * eps.trace() * sympy.eye(2) + 2 * mu_ * eps
    body = -sympy.Matrix([sympy.diff(sigma[0, 0], X) + sympy.diff(sigma[0, 1], Y),
                          sympy.diff(sigma[1, 0], X) + sympy.diff(sigma[1, 1], Y)])
    lam = lambda e: sympy.lambdify((X, Y), e, "numpy")  # noqa: E731
    u_, s_, b_ = [lam(u[i]) for i in range(2)], [[lam(sigma[i, j]) for j in range(2)] for i in range(2)], \
        [lam(body[i]) for i in range(2)]
    full = lambda f, x: f(x[0], x[1]) + 0 * x[0]  # noqa: E731

    theta = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    outline = 0.5 + 0.2 * np.stack([np.cos(theta), np.sin(theta)], 1)
    p, t = triangles_of(*mesh_with_gmsh(elasticity2d.build_domain, outline, h))
    mesh = skfem.MeshTri(p.T.copy(), t.T.copy())
    outer = mesh.facets_satisfying(lambda x: (np.minimum(x, 1 - x) < 1e-9).any(0), boundaries_only=True)
    void = np.setdiff1d(mesh.boundary_facets(), outer)
    basis, uh = elasticity2d.solve(
        p, t, outer, lambda x: np.stack([full(u_[0], x), full(u_[1], x)]), void,
        lambda x, n: np.stack([sum(full(s_[i][j], x) * n[j] for j in range(2)) for i in range(2)]),
        body_force=lambda x: np.stack([full(b_[0], x), full(b_[1], x)]))
    err = skfem.Functional(lambda w: sum((w["uh"][i] - u_[i](w.x[0], w.x[1])) ** 2 for i in range(2)))
    return float(np.sqrt(err.assemble(basis, uh=basis.interpolate(uh))))


def test_elasticity_p2_converges_at_third_order():
    errors = [elasticity_error(h) for h in (0.1, 0.05, 0.025)]
    assert np.all(rates(errors) > 2.5), errors


def test_elasticity_symmetric_void_gives_symmetric_stress():
    theta = np.linspace(0, 2 * np.pi, 128, endpoint=False)
    outline = 0.5 + 0.25 * np.stack([np.cos(theta), np.sin(theta)], 1)
    p, t = triangles_of(*mesh_with_gmsh(elasticity2d.build_domain, outline, 0.02))
    mesh = skfem.MeshTri(p.T.copy(), t.T.copy())
    bottom = mesh.facets_satisfying(lambda x: x[1] < 1e-9, boundaries_only=True)
    top = mesh.facets_satisfying(lambda x: x[1] > 1 - 1e-9, boundaries_only=True)
    basis, u = elasticity2d.solve(p, t, bottom, lambda x: np.zeros_like(x), top,
                                  lambda x, n: np.stack([0 * x[0], 0.1 + 0 * x[0]]))
    vm = elasticity2d.von_mises(basis, u)
    mirrored = LinearTriInterpolator(Triangulation(*p.T, t), vm)(1 - p[:, 0], p[:, 1])
    inside = ~np.ma.getmaskarray(mirrored)
    assert inside.mean() > 0.99
    assert np.abs(mirrored[inside] - vm[inside]).mean() < 0.01 * vm.max()


def test_elasticity_sample_is_clamped_at_the_bottom():
    g = elasticity2d.FAMILY.sample(seed=0, index=0)
    bottom = g.points[:, 1] < 1e-9
    assert bottom.sum() > 10
    assert np.abs(g.point_data["displacement"][bottom]).max() < 1e-12
    assert g.point_data["von_mises"].min() >= 0


# ------------------------------------------------------------------ graded meshes (both 2D families)
@pytest.mark.parametrize("family, tolerances", [
    (poisson2d, {"u": 0.02}),
    (elasticity2d, {"displacement": 0.02, "von_mises": 0.1}),  # stress: the void's concentration, resolved apart
])
def test_graded_meshes_solve_the_same_problem(family, tolerances):
    """A graded sample (fine at the holes / void, 10x coarser away from them) is the same problem as the
    uniform sample of the same seed and index: its solution, interpolated in its own cells onto the uniform
    mesh's nodes, matches (another sample differs by 20% or more)."""
    from geoop.decomposition.transfer import point_to_grid_matrix

    def edge_ratio(g) -> float:
        e = np.linalg.norm(g.points[g.simplices] - np.roll(g.points[g.simplices], 1, 1), axis=2)
        return float(e.max() / e.min())

    uniform, graded = family.FAMILY.sample(0, 1), family.FAMILY.sample(0, 1, grading=10.0)
    other = family.FAMILY.sample(0, 2, grading=10.0)
    assert edge_ratio(graded) > 8 and edge_ratio(uniform) < 3.5
    assert 0.8 < graded.n_points / uniform.n_points < 1.25  # about the uniform mesh's node count
    read, _ = point_to_grid_matrix(graded.points, uniform.points, graded.simplices)
    read_other, _ = point_to_grid_matrix(other.points, uniform.points, other.simplices)
    def rel(values: np.ndarray, name: str) -> float:
        truth = uniform.point_data[name]
        return float(np.linalg.norm(values - truth) / np.linalg.norm(truth))

    for name, tolerance in tolerances.items():
        assert rel(read @ graded.point_data[name], name) < tolerance, name
        assert rel(read_other @ other.point_data[name], name) > 0.2, name


# ------------------------------------------------------------------ potential3d (P2)
def potential_error(h_body: float, h_far: float) -> float:
    exact = lambda x: np.exp(x[0]) * np.cos(x[1])  # noqa: E731 - harmonic in 3D
    pts, cells = mesh_with_gmsh(potential3d.build_domain, "ellipsoid", None, np.ones(3), np.eye(3), h_body, h_far)
    p, t = drop_unused_nodes(pts, cells["tetra"])
    mesh = skfem.MeshTet(p.T.copy(), t.T.copy())
    boundary = mesh.boundary_facets()
    mid = mesh.p[:, mesh.facets[:, boundary]].mean(1).T
    on_box = (np.abs(mid - potential3d.BOX[0]) < 1e-6).any(1) | (np.abs(mid - potential3d.BOX[1]) < 1e-6).any(1)
    flux = lambda x, n: np.exp(x[0]) * (np.cos(x[1]) * n[0] - np.sin(x[1]) * n[1])  # noqa: E731
    basis, uh = potential3d.solve(p, t, boundary[on_box], exact, boundary[~on_box], flux)
    err = skfem.Functional(lambda w: (w["uh"] - exact(w.x)) ** 2).assemble(basis, uh=basis.interpolate(uh))
    return float(np.sqrt(err))


def test_potential_p2_converges_at_third_order():
    # uniform sizes: with the production size field the largest far-field cells shrink slower than h
    errors = [potential_error(0.6, 0.6), potential_error(0.3, 0.3)]
    assert rates(errors)[0] > 2.5, errors


def sphere_flow(h_body: float):
    pts, cells = mesh_with_gmsh(potential3d.build_domain, "ellipsoid", None, np.ones(3), np.eye(3), h_body, 0.6)
    return potential3d.flow_on_mesh(pts, cells["tetra"], np.array([1.0, 0.0, 0.0]))


def test_sphere_surface_pressure_matches_the_analytic_solution():
    errors = []
    for h in (0.08, 0.05):
        p, _, v, on_body, _ = sphere_flow(h)
        x = p[on_body]
        exact = 1 - 9 / 4 * (1 - (x[:, 0] / np.linalg.norm(x, axis=1)) ** 2)
        cp = 1 - (v[on_body] ** 2).sum(1)
        errors.append(np.linalg.norm(cp - exact) / np.linalg.norm(exact))
    assert errors[0] < 0.08 and errors[1] < errors[0], errors  # part of the rest is blockage by the box


def test_potential_flow_exerts_no_net_force_on_a_body():
    g = potential3d.FAMILY.sample(seed=1, index=0, shapes=("car",), h_body=0.07)
    tris = g.global_data["body_triangles"]
    p = g.points[tris]
    area_normal = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]) / 2  # into the body or out: sign irrelevant
    cp = g.point_data["cp"][tris].mean(1)
    force = (cp[:, None] * area_normal).sum(0)
    scale = (np.abs(cp) * np.linalg.norm(area_normal, axis=1)).sum()
    assert np.linalg.norm(force) < 0.05 * scale  # d'Alembert: no drag, no lift in potential flow


def test_the_3d_inviscid_flow_input_is_exact_for_a_uniform_stream_and_converges_on_a_sphere():
    """Linear elements reproduce the undisturbed potential exactly; around a sphere in a box the surface Cp
    tends to 1 - 9/4 sin^2(theta) as the mesh is refined (first order at the wall: node-averaged gradients)."""
    from geoop import Geometry
    from geoop.data.potential_flow import potential_flow_fields
    from tests.conftest import box_tets

    box = box_tets(5)
    stream = np.array([1.5, -0.5, 0.25])
    empty = box.with_point_data(wall=np.zeros(box.n_points, dtype=bool),
                                freestream=np.tile(stream, (box.n_points, 1)))
    uniform = potential_flow_fields(empty, "wall", "freestream")
    assert np.allclose(uniform["u_potential"], stream, atol=1e-10) and np.allclose(uniform["cp_potential"], 0,
                                                                                   atol=1e-10)
    errors = []
    for h in (0.06, 0.035):
        points, cells = mesh_with_gmsh(potential3d.build_domain, "ellipsoid", None, np.ones(3), np.eye(3), h, 0.5)
        points, tets = drop_unused_nodes(points, cells["tetra"])
        radius = np.linalg.norm(points, axis=1)
        on = radius < 0.5 + 1e-6
        g = Geometry(points, {"tetra": tets}, point_data={"on_body": on,
                                                          "freestream": np.tile([2.0, 0, 0], (len(points), 1))})
        cp = potential_flow_fields(g, "on_body", "freestream")["cp_potential"][on]
        exact = 1 - 9 / 4 * (1 - (points[on, 0] / radius[on]) ** 2)
        errors.append(np.linalg.norm(cp - exact) / np.linalg.norm(exact))
    assert errors[1] < errors[0] / 1.4 and errors[1] < 0.15
    assert cp[np.argmin(points[on, 0])] == pytest.approx(1.0, abs=0.05)  # the front stagnation point
