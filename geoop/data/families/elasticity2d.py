"""`elasticity2d`: the Geo-FNO elasticity protocol on our own solver. Unit square with one star-shaped void
r(theta) = 0.2 + 0.2 / (1 + exp(xi(theta))), xi a random periodic field; bottom clamped, uniform traction on
top, plane strain, linear isotropic material (Geo-FNO's data used a hyperelastic law), P2 elements (scikit-fem);
target: von Mises stress L2-projected to the mesh vertices."""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from geoop.data.families.base import Family, FieldSpec
from geoop.data.linear_solve import solve_condensed
from geoop.data.meshing import GRADING_REACH, drop_unused_nodes, graded_sizes, grade_towards, mesh_with_gmsh
from geoop.geometry.geometry import Geometry

YOUNG, POISSON = 1.0, 0.3
TRACTION = 0.1


def void_radius(rng: np.random.Generator, n: int = 128, modes: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Angles and radii of the star-shaped void boundary; xi has Fourier modes decaying like 1/j."""
    theta = np.linspace(0, 2 * np.pi, n, endpoint=False)
    j = np.arange(1, modes + 1)
    a, b = rng.normal(size=(2, modes)) * 2.0 / j
    xi = (a[:, None] * np.cos(j[:, None] * theta) + b[:, None] * np.sin(j[:, None] * theta)).sum(0)
    return theta, 0.2 + 0.2 / (1 + np.exp(xi))


#: graded meshes (`grading` > 1): finest size relative to h / sqrt(grading), for about the uniform mesh's
#: node count (measured at grading 10 on four samples: 0.92x of the uniform h = 0.03 mesh, edges 0.009-0.12)
GRADED_FINE = 1.15


def build_domain(gmsh, outline: np.ndarray, h: float, grading: float = 1.0) -> None:
    """Unit square minus the closed spline through `outline (n, 2)`, triangles of size about h; with `grading`
    > 1 the size grows with the distance from the void (see `graded_sizes`)."""
    geo = gmsh.model.geo
    pts = [geo.addPoint(x, y, 0, h) for x, y in outline]
    rim = geo.addSpline(pts + [pts[0]])
    void = geo.addCurveLoop([rim])
    corners = [geo.addPoint(x, y, 0, h) for x, y in [(0, 0), (1, 0), (1, 1), (0, 1)]]
    square = geo.addCurveLoop([geo.addLine(corners[i], corners[(i + 1) % 4]) for i in range(4)])
    geo.addPlaneSurface([square, void])
    geo.synchronize()
    if grading > 1:
        grade_towards(gmsh, [rim], *graded_sizes(h, grading, GRADED_FINE), reach=GRADING_REACH)
    gmsh.model.mesh.generate(2)


def lame(young: float = YOUNG, poisson: float = POISSON) -> tuple[float, float]:
    """Plane-strain Lame parameters (lambda, mu)."""
    return young * poisson / ((1 + poisson) * (1 - 2 * poisson)), young / (2 * (1 + poisson))


def solve(points: np.ndarray, triangles: np.ndarray, dirichlet: np.ndarray, dirichlet_value: Callable,
          traction_facets: np.ndarray, traction: Callable, body_force: Callable | None = None):
    """P2 plane-strain displacement. `dirichlet_value(x (2, ...)) -> (2, ...)`, `traction(x, n) -> (2, ...)`
    on `traction_facets`, other boundary facets traction-free. Returns (basis, dof vector)."""
    import skfem
    from skfem.models.elasticity import linear_elasticity

    mesh = skfem.MeshTri(points.T.copy(), triangles.T.copy())
    basis = skfem.Basis(mesh, skfem.ElementVector(skfem.ElementTriP2()))
    K = linear_elasticity(*lame()).assemble(basis)

    @skfem.LinearForm
    def surface_load(v, w):
        t = traction(w.x, w.n)
        return t[0] * v[0] + t[1] * v[1]

    @skfem.LinearForm
    def volume_load(v, w):
        b = body_force(w.x)
        return b[0] * v[0] + b[1] * v[1]

    F = surface_load.assemble(basis.boundary(facets=traction_facets)) if len(traction_facets) else \
        np.zeros(basis.N)
    if body_force is not None:
        F = F + volume_load.assemble(basis)
    u = basis.zeros()
    dofs = basis.get_dofs(dirichlet)
    fixed = dofs.all()
    u[fixed] = basis.project(lambda x: dirichlet_value(x))[fixed]
    return basis, solve_condensed(K, F, u, fixed)


def stress(basis, u: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cauchy stress components (sxx, syy, sxy) at the quadrature points, each `(elements, points)`."""
    lam, mu = lame()
    grad = basis.interpolate(u).grad  # (2, 2, elements, points)
    div = grad[0, 0] + grad[1, 1]
    return (lam * div + 2 * mu * grad[0, 0], lam * div + 2 * mu * grad[1, 1], mu * (grad[0, 1] + grad[1, 0]))


def von_mises(basis, u: np.ndarray) -> np.ndarray:
    """Plane-strain von Mises stress L2-projected onto P1: one value per mesh vertex (the projection's small
    undershoots below zero near stress-free corners are clipped to 0)."""
    import skfem

    sxx, syy, sxy = stress(basis, u)
    szz = POISSON * (sxx + syy)
    vm = np.sqrt(0.5 * ((sxx - syy) ** 2 + (syy - szz) ** 2 + (szz - sxx) ** 2) + 3 * sxy**2)
    scalar = basis.with_element(skfem.ElementTriP1())
    return np.maximum(scalar.project(vm), 0.0)


def make(rng: np.random.Generator, h: float = 0.03, grading: float = 1.0, mesh_timeout: float = 60.0) -> Geometry:
    """One sample: a random void, the P2 solution, von Mises stress and displacement at the vertices.
    `grading`: coarsest / finest mesh size, fine at the void (1: uniform size h)."""
    import skfem

    theta, radius = void_radius(rng)
    outline = 0.5 + radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)
    pts, cells = mesh_with_gmsh(build_domain, outline, h, grading, timeout=mesh_timeout)
    points, triangles = drop_unused_nodes(pts[:, :2], cells["triangle"])
    mesh = skfem.MeshTri(points.T.copy(), triangles.T.copy())
    bottom = mesh.facets_satisfying(lambda x: x[1] < 1e-9, boundaries_only=True)
    top = mesh.facets_satisfying(lambda x: x[1] > 1 - 1e-9, boundaries_only=True)
    basis, u = solve(points, triangles, bottom, lambda x: np.zeros_like(x), top,
                     lambda x, n: np.stack([np.zeros_like(x[0]), np.full_like(x[0], TRACTION)]))
    vertex_dofs = basis.nodal_dofs[:, : mesh.nvertices]  # (2, N) displacement dofs at the vertices
    displacement = u[vertex_dofs].T
    return Geometry(points, {"triangle": triangles},
                    point_data={"von_mises": von_mises(basis, u), "displacement": displacement},
                    global_data={"void_radius": radius, "void_theta": theta})


FAMILY = Family(
    name="elasticity2d",
    description=__doc__.strip().splitlines()[0],
    dim=2,
    inputs={},
    targets={"von_mises": FieldSpec(1, "E (Young's modulus)", "von Mises stress"),
             "displacement": FieldSpec(2, "L (square side)", "displacement")},
    make=make,
    options={"h": 0.03, "grading": 1.0},
    default_n=1200,
)
