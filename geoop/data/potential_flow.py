"""The inviscid flow around a body, as input fields for a model that learns the viscous one: in 2D from the panel
method (`geoop.data.panel_method`), in 3D from Laplace's equation for the velocity potential solved with linear
finite elements on the sample's own mesh. A model then learns what viscosity changes (boundary layers, wakes,
separation) instead of the whole flow."""
from __future__ import annotations

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import spsolve

from geoop.errors import GeometryError, GeoopError
from geoop.geometry.geometry import Geometry

#: an outer boundary face is along the stream (it takes the undisturbed flux, not the undisturbed potential) when
#: its normal is within this cosine of square to the stream
WALL_COSINE = 0.5


def field_specs(dim: int, friction: bool) -> dict[str, dict[str, object]]:
    """The input fields `potential_flow_fields` adds, with their specs (vectors with `dim` components)."""
    method = "panel method" if dim == 2 else "linear finite elements"
    specs = {"u_potential": {"components": dim, "units": "as the free stream",
                             "description": f"inviscid velocity ({method})"},
             "p_potential": {"components": 1, "units": "as the free stream squared",
                             "description": "inviscid kinematic pressure, 0 in the free stream"},
             "cp_potential": {"components": 1, "units": "1", "description": "inviscid pressure coefficient"}}
    if friction:
        specs["cf_potential"] = {"components": dim, "units": "1",
                                 "description": "turbulent flat-plate skin friction under the inviscid flow"}
    return specs


def potential_flow_fields(geometry: Geometry, body: str, freestream: str, viscosity: float | None = None
                          ) -> dict[str, np.ndarray]:
    """Inviscid flow around the body (the 0/1 point field `body`) of a fluid mesh in a free stream (the input
    field `freestream`, the same at every point), at its points: `u_potential (N, d)`, `p_potential (N,)`
    (kinematic, (|U_inf|^2 - |u|^2) / 2) and `cp_potential (N,)`; in 2D with the kinematic `viscosity` also the
    flat-plate skin friction `cf_potential` (see `geoop.data.panel_method.panel_flow_fields`). 3D: see
    `fem_potential_flow`."""
    if geometry.dim == 2:
        from geoop.data.panel_method import panel_flow_fields

        return panel_flow_fields(geometry, body, freestream, viscosity)
    if viscosity is not None:
        raise GeometryError("the flat-plate skin friction input is 2D only", path=geometry.source,
                            fix="leave data.viscosity out for 3D data")
    stream = np.asarray(geometry.point_data[freestream], dtype=np.float64).reshape(geometry.n_points, -1)[0]
    u = fem_potential_flow(geometry, geometry.point_mask(body), stream)
    speed2 = float(stream @ stream)
    p = 0.5 * (speed2 - (u**2).sum(1))
    return {"u_potential": u, "p_potential": p, "cp_potential": p / (0.5 * speed2)}


def p1_gradients(points: np.ndarray, tets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The gradients `(C, 4, 3)` of the four barycentric coordinates of each tetrahedron `tets (C, 4)` and the
    volumes `(C,)`: with the edge matrix D (row k: x_k - x_0, k = 1..3), grad lambda_k is the k-th column of
    D^-1, and grad lambda_0 = -(grad lambda_1 + grad lambda_2 + grad lambda_3)."""
    corner = points[tets]
    edges = corner[:, 1:] - corner[:, :1]  # (C, 3, 3), row k: x_{k+1} - x_0
    volume = np.abs(np.linalg.det(edges)) / 6.0
    if (volume <= 0).any():
        raise GeometryError(f"{int((volume <= 0).sum())} tetrahedra have no volume", fix="check the mesh")
    grads = np.linalg.inv(edges).transpose(0, 2, 1)  # (C, 3, 3): row k = grad lambda_{k+1}
    return np.concatenate([-grads.sum(1, keepdims=True), grads], axis=1), volume


def fem_potential_flow(geometry: Geometry, on_body: np.ndarray, stream: np.ndarray) -> np.ndarray:
    """`(N, 3)` the inviscid velocity u = grad phi at the nodes of a 3D fluid mesh (its cells split into
    tetrahedra) around a body, in the free stream `stream (3,)`.

    Laplace's equation -div grad phi = 0 with linear elements (stiffness K_ij = sum_cells V grad l_i . grad l_j);
    no flow through the body (d phi / dn = 0 on the faces whose nodes are all on `on_body (N,)`), the
    undisturbed flux through the outer faces along the stream (d phi / dn = U . n where |n . U| <
    `WALL_COSINE` |U|: a ground or tunnel sides, through which a stream along them does not flow; each face
    adds (U . n) A / 3 to its corners' loads), and the undisturbed potential phi = U . x on the other outer faces
    (inflow and outflow). A uniform stream with no body is reproduced exactly. Solved directly (sparse
    LU: 1.7 s for 23k unknowns, where Jacobi-preconditioned conjugate gradients took 25 s on the stretched
    tetrahedra of split hexahedra); the velocity at a node is the volume-weighted mean of its cells' gradients."""
    tets = geometry.simplices
    if tets.shape[1] != 4:
        raise GeometryError("the 3D inviscid flow needs a volume mesh (tetrahedra or cells split into them)",
                            path=geometry.source, fix="give the fluid's volume mesh, not its surface")
    points = geometry.points
    grads, volume = p1_gradients(points, tets)
    local = volume[:, None, None] * np.einsum("cik,cjk->cij", grads, grads)
    rows = np.repeat(tets, 4, axis=1).ravel()
    cols = np.tile(tets, (1, 4)).ravel()
    n = len(points)
    stiffness = sparse.csr_matrix((local.ravel(), (rows, cols)), shape=(n, n))
    facets = geometry.boundary_facets
    corner = points[facets]
    normal = np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True)
    direction = stream / np.linalg.norm(stream)
    open_face = (np.abs(normal @ direction) >= WALL_COSINE) & ~on_body[facets].all(1)
    fixed = np.zeros(n, dtype=bool)
    fixed[facets[open_face].ravel()] = True
    fixed &= ~on_body
    if not fixed.any():
        raise GeometryError("no outer face crosses the stream: the potential is not fixed anywhere",
                            path=geometry.source, fix="give a fluid mesh with an inflow and an outflow side")
    wall = ~open_face & ~on_body[facets].all(1)
    area = 0.5 * np.linalg.norm(np.cross(corner[:, 1] - corner[:, 0], corner[:, 2] - corner[:, 0]), axis=1)
    load = np.zeros(n)
    np.add.at(load, facets[wall].ravel(), np.repeat((normal[wall] @ stream) * area[wall] / 3, 3))
    phi = points @ stream
    free = ~fixed
    rows_free = stiffness[free]
    solution = spsolve(rows_free[:, free].tocsc(), load[free] - rows_free[:, fixed] @ phi[fixed])
    if not np.isfinite(solution).all():
        raise GeoopError("the potential-flow solve failed (a singular system: is every part of the fluid "
                         "connected to an inflow or outflow face?)", path=geometry.source)
    phi[free] = solution
    cell_velocity = np.einsum("cik,ci->ck", grads, phi[tets])
    weight = np.zeros(n)
    np.add.at(weight, tets.ravel(), np.repeat(volume, 4))
    velocity = np.zeros((n, 3))
    np.add.at(velocity, tets.ravel(), np.repeat(volume[:, None] * cell_velocity, 4, axis=0))
    return velocity / weight[:, None]
