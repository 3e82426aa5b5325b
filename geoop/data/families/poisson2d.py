"""`poisson2d`: -div(k grad u) = f on the unit square minus random disks (BENO's setting on unstructured
meshes). u = g on the outer boundary (inhomogeneous Dirichlet), k du/dn = h on the holes (Neumann flux).
k = exp(field), f, g, h random smooth fields; P1 finite elements (scikit-fem) on gmsh triangles."""
from __future__ import annotations

import numpy as np

from geoop.data.families.base import Family, FieldSpec
from geoop.data.linear_solve import solve_condensed
from geoop.data.meshing import GRADING_REACH, drop_unused_nodes, graded_sizes, grade_towards, mesh_with_gmsh
from geoop.data.random_fields import FourierField
from geoop.geometry.geometry import Geometry


def random_holes(rng: np.random.Generator, n_holes: int, r_min: float = 0.07, r_max: float = 0.18,
                 gap: float = 0.06, tries: int = 200) -> np.ndarray:
    """`(n, 3)` rows (cx, cy, r) of disks inside the unit square, apart from each other and from the edge."""
    holes: list[tuple[float, float, float]] = []
    for _ in range(tries):
        if len(holes) == n_holes:
            break
        r = rng.uniform(r_min, r_max)
        c = rng.uniform(r + gap, 1 - r - gap, size=2)
        if all(np.hypot(*(c - h[:2])) > r + h[2] + gap for h in holes):
            holes.append((c[0], c[1], r))
    return np.array(holes).reshape(-1, 3)


#: graded meshes (`grading` > 1): finest size relative to h / sqrt(grading), for about the uniform mesh's
#: node count (measured at grading 10 on four samples: 0.85-1.15x of the uniform h = 0.03 mesh, edges 0.011-0.15)
GRADED_FINE = 1.6


def build_domain(gmsh, holes: np.ndarray, h: float, grading: float = 1.0) -> None:
    """gmsh model of the unit square minus `holes`, triangles of size about h; with `grading` > 1 the size
    grows with the distance from the holes (see `graded_sizes`)."""
    occ = gmsh.model.occ
    square = occ.addRectangle(0, 0, 0, 1, 1)
    if len(holes):
        occ.cut([(2, square)], [(2, occ.addDisk(cx, cy, 0, r, r)) for cx, cy, r in holes])
    occ.synchronize()
    rims = [tag for dim, tag in gmsh.model.getBoundary(gmsh.model.getEntities(2), oriented=False)
            if not _on_square(gmsh.model.getBoundingBox(dim, tag))]
    if grading > 1 and rims:
        grade_towards(gmsh, rims, *graded_sizes(h, grading, GRADED_FINE), reach=GRADING_REACH)
    else:
        gmsh.option.setNumber("Mesh.MeshSizeMax", h)
        gmsh.option.setNumber("Mesh.MeshSizeMin", h / 2)
    gmsh.model.mesh.generate(2)


def _on_square(box: tuple[float, ...], tol: float = 1e-7) -> bool:
    """Whether a curve's bounding box `(x0, y0, z0, x1, y1, z1)` lies on an edge of the unit square."""
    x0, y0, _, x1, y1, _ = box
    return any(abs(a) < tol and abs(b) < tol or abs(a - 1) < tol and abs(b - 1) < tol for a, b in ((x0, x1), (y0, y1)))


def boundary_facets(mesh) -> tuple[np.ndarray, np.ndarray]:
    """scikit-fem facet ids on the outer square and on the holes."""
    facets = mesh.boundary_facets()
    mid = mesh.p[:, mesh.facets[:, facets]].mean(axis=1)
    outer = (np.minimum(mid, 1 - mid) < 1e-9).any(axis=0)
    return facets[outer], facets[~outer]


def solve(points: np.ndarray, triangles: np.ndarray, k: np.ndarray, f: np.ndarray, g: np.ndarray,
          flux: np.ndarray, dirichlet: np.ndarray, neumann: np.ndarray) -> np.ndarray:
    """P1 solution `(N,)` of -div(k grad u) = f, u = g on `dirichlet` facets, k du/dn = flux on `neumann`
    facets, with k, f, g, flux given at the nodes (P1-interpolated in the integrals)."""
    import skfem
    from skfem.helpers import dot, grad

    mesh = skfem.MeshTri(points.T.copy(), triangles.T.copy())
    basis = skfem.Basis(mesh, skfem.ElementTriP1())

    @skfem.BilinearForm
    def stiffness(u, v, w):
        return w["k"] * dot(grad(u), grad(v))

    @skfem.LinearForm
    def load(v, w):
        return w["f"] * v

    K = stiffness.assemble(basis, k=basis.interpolate(k))
    F = load.assemble(basis, f=basis.interpolate(f))
    if len(neumann):
        facet_basis = skfem.FacetBasis(mesh, skfem.ElementTriP1(), facets=neumann)
        F = F + load.assemble(facet_basis, f=facet_basis.interpolate(flux))
    u = np.zeros(len(points))
    dofs = basis.get_dofs(dirichlet).all()
    u[dofs] = g[dofs]
    return solve_condensed(K, F, u, dofs)


def make(rng: np.random.Generator, h: float = 0.03, holes: tuple[int, int] = (1, 3), grading: float = 1.0,
         mesh_timeout: float = 60.0) -> Geometry:
    """One sample: a random domain, random coefficients, the FEM solution, as a 2D Geometry. `grading`:
    coarsest / finest mesh size, fine at the holes (1: uniform size h)."""
    import skfem

    disks = random_holes(rng, int(rng.integers(holes[0], holes[1] + 1)))
    pts, cells = mesh_with_gmsh(build_domain, disks, h, grading, timeout=mesh_timeout)
    points, triangles = drop_unused_nodes(pts[:, :2], cells["triangle"])
    mesh = skfem.MeshTri(points.T.copy(), triangles.T.copy())
    dirichlet, neumann = boundary_facets(mesh)
    k = np.exp(0.5 * FourierField(rng, 2)(points))
    f = FourierField(rng, 2, scale=10.0)(points)
    g = FourierField(rng, 2, max_wavenumber=3)(points)
    flux = FourierField(rng, 2, max_wavenumber=3)(points)
    u = solve(points, triangles, k, f, g, flux, dirichlet, neumann)
    on_dirichlet = np.zeros(len(points), dtype=bool)
    on_dirichlet[mesh.facets[:, dirichlet].ravel()] = True
    on_neumann = np.zeros(len(points), dtype=bool)
    on_neumann[mesh.facets[:, neumann].ravel()] = True
    return Geometry(points, {"triangle": triangles},
                    point_data={"k": k, "f": f, "g": g, "flux": flux, "u": u,
                                "dirichlet": on_dirichlet, "neumann": on_neumann},
                    global_data={"holes": disks, "h": np.array(h)})


FAMILY = Family(
    name="poisson2d",
    description=__doc__.strip().splitlines()[0],
    dim=2,
    inputs={"k": FieldSpec(1, "1", "diffusivity exp(field)"), "f": FieldSpec(1, "1", "source"),
            "g": FieldSpec(1, "1", "Dirichlet value (used on the outer boundary)", mask="dirichlet"),
            "flux": FieldSpec(1, "1", "Neumann flux k du/dn (used on the holes)", mask="neumann")},
    targets={"u": FieldSpec(1, "1", "solution")},
    make=make,
    options={"h": 0.03, "holes": (1, 3), "grading": 1.0},
    default_n=1000,
)
