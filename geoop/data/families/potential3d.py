"""`potential3d`: potential flow around a closed body in a box (the GINO surface-pressure task in a form we can
solve). Laplace's equation for the velocity potential phi, phi = U.x on the box, d phi/dn = 0 on the body, P2
tetrahedra (scikit-fem) on a gmsh mesh that is fine at the body and coarse far away. Targets: the velocity
v = grad phi at the mesh vertices (L2-projected) and the pressure coefficient Cp = 1 - |v|^2 / |U|^2 on the
body surface. Bodies: smooth procedural shapes in a random pose and anisotropic scale, or closed surface files."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from geoop.data.families.base import Family, FieldSpec
from geoop.data.linear_solve import solve_condensed
from geoop.data.manifest import Manifest
from geoop.data.meshing import MeshingError, centred_closed_surface, drop_unused_nodes, mesh_with_gmsh
from geoop.geometry.geometry import Geometry

BOX = np.array([[-2.0, -1.5, -1.5], [2.5, 1.5, 1.5]])  # body of size ~1 at the origin; 1.5 body lengths free
SHAPES = ("ellipsoid", "rounded_box", "capsule", "car")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation matrix `(3, 3)`."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _axis_angle(rotation: np.ndarray) -> tuple[np.ndarray, float]:
    angle = float(np.arccos(np.clip((np.trace(rotation) - 1) / 2, -1, 1)))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 1.0]), 0.0
    if np.pi - angle < 1e-6:  # 180 degrees: axis from the symmetric part
        w, v = np.linalg.eigh((rotation + np.eye(3)) / 2)
        return v[:, -1], angle
    axis = np.array([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                     rotation[1, 0] - rotation[0, 1]])
    return axis / (2 * np.sin(angle)), angle


def gmsh_edges_of(volume: int) -> list[int]:
    """Curve tags bounding an OCC volume (after synchronize)."""
    import gmsh

    surfaces = gmsh.model.getBoundary([(3, volume)], combined=False, oriented=False)
    return sorted({abs(c[1]) for c in gmsh.model.getBoundary(surfaces, combined=False, oriented=False)})


def _procedural(occ, shape: str, scale: np.ndarray) -> list[tuple[int, int]]:
    """OCC volume of a smooth body, about unit size before `scale`, centred at the origin."""
    if shape == "ellipsoid":
        body = [(3, occ.addSphere(0, 0, 0, 0.5))]
    elif shape == "rounded_box":
        b = occ.addBox(-0.5, -0.3, -0.25, 1.0, 0.6, 0.5)
        occ.synchronize()
        body = occ.fillet([b], gmsh_edges_of(b), [0.12])
    elif shape == "capsule":
        c = occ.addCylinder(-0.35, 0, 0, 0.7, 0, 0, 0.2)
        body, _ = occ.fuse([(3, c)], [(3, occ.addSphere(-0.35, 0, 0, 0.2)), (3, occ.addSphere(0.35, 0, 0, 0.2))])
    elif shape == "car":
        parts = []
        for corner, size, radius in [((-0.5, -0.22, -0.15), (1.0, 0.44, 0.2), 0.08),
                                     ((-0.2, -0.18, -0.02), (0.45, 0.36, 0.19), 0.07)]:
            b = occ.addBox(*corner, *size)
            occ.synchronize()
            edges = gmsh_edges_of(b)
            parts.append(occ.fillet([b], edges, [radius])[0])
        body, _ = occ.fuse([parts[0]], [parts[1]])
    else:
        raise ValueError(f"unknown shape {shape!r}; choose from {SHAPES}")
    occ.dilate(body, 0, 0, 0, *scale)
    return body


def build_domain(gmsh, shape: str | None, surface_file: str | None, scale: np.ndarray, rotation: np.ndarray,
                 h_body: float, h_far: float) -> None:
    """Box minus the posed body; mesh size h_body at the body growing to h_far away from it."""
    occ = gmsh.model.occ
    if surface_file is None:
        box = occ.addBox(*BOX[0], *(BOX[1] - BOX[0]))
        body = _procedural(occ, shape, scale)
        axis, angle = _axis_angle(rotation)
        if angle:
            occ.rotate(body, 0, 0, 0, *axis, angle)
        occ.cut([(3, box)], body)
        occ.synchronize()
        body_surfaces = [s[1] for s in gmsh.model.getBoundary([(3, v[1]) for v in occ.getEntities(3)])
                         if not _on_box(gmsh, s[1])]
    else:  # a triangulated surface: the built-in kernel only (OCC cannot subtract a discrete surface)
        gmsh.merge(surface_file)
        gmsh.model.mesh.classifySurfaces(np.pi / 4, True, True, np.pi)
        gmsh.model.mesh.createGeometry()
        body_surfaces = [s[1] for s in gmsh.model.getEntities(2)]
        geo = gmsh.model.geo
        corners = {(i, j, k): geo.addPoint(*[BOX[c][a] for a, c in enumerate((i, j, k))])
                   for i in (0, 1) for j in (0, 1) for k in (0, 1)}
        faces = []
        for axis in range(3):
            for side in (0, 1):
                quad = [tuple(np.roll([side, a, b], axis)) for a, b in ((0, 0), (1, 0), (1, 1), (0, 1))]
                pts = [corners[q] for q in quad]
                lines = [geo.addLine(pts[i], pts[(i + 1) % 4]) for i in range(4)]
                faces.append(geo.addPlaneSurface([geo.addCurveLoop(lines)]))
        geo.addVolume([geo.addSurfaceLoop(faces), geo.addSurfaceLoop(body_surfaces)])
        geo.removeAllDuplicates()
        geo.synchronize()
    field = gmsh.model.mesh.field
    dist = field.add("Distance")
    field.setNumbers(dist, "SurfacesList", body_surfaces)
    threshold = field.add("Threshold")
    field.setNumber(threshold, "InField", dist)
    field.setNumber(threshold, "SizeMin", h_body)
    field.setNumber(threshold, "SizeMax", h_far)
    field.setNumber(threshold, "DistMin", 0.05)
    field.setNumber(threshold, "DistMax", 1.5)
    field.setAsBackgroundMesh(threshold)
    gmsh.option.setNumber("Mesh.MeshSizeExtendFromBoundary", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromPoints", 0)
    gmsh.option.setNumber("Mesh.MeshSizeFromCurvature", 0)
    gmsh.model.mesh.generate(3)


def _on_box(gmsh, surface: int) -> bool:
    """A face of the outer box: flat along one axis, at one of the box's bounds."""
    bb = np.array(gmsh.model.getBoundingBox(2, surface))
    lo, hi = bb[:3], bb[3:]
    return bool(np.any(np.isclose(lo, hi, atol=1e-6) & (np.isclose(lo, BOX[0]) | np.isclose(lo, BOX[1]))))


def solve(points: np.ndarray, tets: np.ndarray, dirichlet: np.ndarray, dirichlet_value: Callable,
          neumann: np.ndarray | None = None, flux: Callable | None = None):
    """P2 solution of Laplace's equation: phi = dirichlet_value(x) on `dirichlet` facets, d phi/dn = flux(x, n)
    on `neumann` facets (0 elsewhere). Returns (basis, dof vector)."""
    import skfem
    from skfem.models.poisson import laplace

    mesh = skfem.MeshTet(points.T.copy(), tets.T.copy())
    basis = skfem.Basis(mesh, skfem.ElementTetP2())
    K = laplace.assemble(basis)
    F = np.zeros(basis.N)
    if neumann is not None and flux is not None and len(neumann):
        @skfem.LinearForm
        def load(v, w):
            return flux(w.x, w.n) * v

        F = load.assemble(basis.boundary(facets=neumann))
    phi = basis.zeros()
    fixed = basis.get_dofs(dirichlet).all()
    phi[fixed] = dirichlet_value(basis.doflocs[:, fixed])  # Lagrange dofs: values at their locations
    return basis, solve_condensed(K, F, phi, fixed, method="amg")


def vertex_velocity(basis, phi: np.ndarray) -> np.ndarray:
    """grad phi L2-projected onto P1, `(N, 3)` at the mesh vertices."""
    import skfem

    grad = basis.interpolate(phi).grad  # (3, elements, points)
    scalar = basis.with_element(skfem.ElementTetP1())
    return np.stack([scalar.project(grad[i]) for i in range(3)], axis=1)


def flow_on_mesh(points: np.ndarray, tets: np.ndarray, direction: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Solve for the flow with unit free stream `direction` on a gmsh mesh of the box minus a body.

    Returns the used points `(N, 3)`, tets, vertex velocity `(N, 3)`, the body-surface mask `(N,)` and the
    body's boundary triangles `(F, 3)`."""
    import skfem

    points, tets = drop_unused_nodes(points, tets)
    mesh = skfem.MeshTet(points.T.copy(), tets.T.copy())
    boundary = mesh.boundary_facets()
    mid = mesh.p[:, mesh.facets[:, boundary]].mean(axis=1).T
    on_box = (np.abs(mid - BOX[0]) < 1e-6).any(1) | (np.abs(mid - BOX[1]) < 1e-6).any(1)
    basis, phi = solve(points, tets, boundary[on_box], lambda x: np.einsum("i...,i->...", x, direction))
    on_body = np.zeros(len(points), dtype=bool)
    body_tris = mesh.facets[:, boundary[~on_box]].T
    on_body[body_tris.ravel()] = True
    return points, tets, vertex_velocity(basis, phi), on_body, body_tris


def make(rng: np.random.Generator, shapes: tuple[str, ...] = SHAPES, surface_files: tuple[str, ...] = (),
         h_body: float = 0.05, h_far: float = 0.6, cp_clip: float | None = None,
         mesh_timeout: float = 120.0) -> Geometry:
    """One sample: a random body (procedural or from `surface_files`), pose, scale and flow direction.

    `cp_clip`: if given, surface Cp below it is clipped to it (the suction spikes at sharp edges of real shapes
    can reach Cp of -50 or less and dominate training); `cp_min`/`cp_max` record the raw range either way."""
    choices = list(shapes) + [str(Path(f)) for f in surface_files]
    pick = choices[int(rng.integers(len(choices)))]
    scale = rng.uniform(0.6, 1.0, size=3) * np.array([1.2, 1.0, 1.0])
    rotation = random_rotation(rng)
    direction = np.array([1.0, 0.0, 0.0]) + rng.normal(scale=0.3, size=3)
    direction /= np.linalg.norm(direction)
    surface_file = None
    if pick not in SHAPES:
        surface_file = prepare_surface(pick, scale, rotation)
    pts, cells = mesh_with_gmsh(build_domain, None if surface_file else pick, surface_file, scale, rotation,
                                h_body, h_far, timeout=mesh_timeout)
    if "tetra" not in cells:
        raise MeshingError("gmsh made no tetrahedra (is the body surface closed and inside the box?)")
    points, tets, velocity, on_body, body_tris = flow_on_mesh(pts, cells["tetra"], direction)
    raw = np.where(on_body, 1 - (velocity**2).sum(1), 0.0)
    cp = raw if cp_clip is None else np.maximum(raw, cp_clip)
    return Geometry(points, {"tetra": tets},
                    point_data={"velocity": velocity, "cp": cp, "on_body": on_body,
                                "freestream": np.broadcast_to(direction, points.shape).copy()},
                    global_data={"freestream": direction, "scale": scale, "rotation": rotation,
                                 "shape": np.array(choices.index(pick)), "body_triangles": body_tris,
                                 "cp_min": np.array(raw[on_body].min()), "cp_max": np.array(raw[on_body].max())})


def samples_with_bodies(root: str | Path, manifest: Manifest, files: list[str]) -> list[int]:
    """Ids of the samples of the dataset in `root` whose body is one of the surface `files` (the designs a
    user holds out as the test split)."""
    from geoop.errors import GeoopError

    options = manifest.options
    choices = list(options.get("shapes", SHAPES)) + [str(Path(f)) for f in options.get("surface_files", ())]
    wanted = {choices.index(str(Path(f))) for f in files if str(Path(f)) in choices}
    ids = []
    for record in manifest.samples:
        with np.load(Path(root) / record["file"], allow_pickle=False) as z:
            if int(z["global_data:shape"]) in wanted:
                ids.append(record["index"])
    if not ids:
        raise GeoopError(f"no sample drew one of the {len(files)} held-out bodies", path=root,
                         fix="make more samples (--n), so that every body is drawn")
    return ids


def prepare_surface(path: str, scale: np.ndarray, rotation: np.ndarray) -> str:
    """Normalise a closed surface file to unit size at the origin, pose it, write a temporary STL for gmsh."""
    import tempfile

    mesh = centred_closed_surface(path)
    mesh.apply_scale(1.0 / mesh.extents.max())
    mesh.vertices = (mesh.vertices * scale) @ rotation.T
    tmp = tempfile.NamedTemporaryFile(suffix=".stl", delete=False)
    mesh.export(tmp.name)
    return tmp.name


FAMILY = Family(
    name="potential3d",
    description=__doc__.strip().splitlines()[0],
    dim=3,
    inputs={"freestream": FieldSpec(3, "U (free-stream speed)", "free-stream direction, the same at every point")},
    targets={"velocity": FieldSpec(3, "U", "flow velocity grad phi"),
             "cp": FieldSpec(1, "1", "pressure coefficient on the body surface", mask="on_body")},
    make=make,
    options={},
    default_n=400,
    requires=("gmsh", "skfem", "pyamg"),
    shapes=SHAPES,
)
