"""Inviscid, incompressible flow past a 2D body by the Hess-Smith panel method: a constant-strength source
sigma_j on every straight panel of the outline and one vortex strength gamma shared by all panels, with no flow
through the panels at their midpoints and, for a body with a sharp trailing edge, the Kutta condition (equal
tangential speeds on the two panels that meet there; a body without one carries no circulation).

For a panel from A to B (length L, tangent t, outward normal n) and a point P at panel coordinates
xi = (P - A).t, eta = (P - A).n, with r1 = |P - A|, r2 = |P - B| and beta the angle from P - A to P - B (the
angle the panel subtends at P, atan2(eta L, xi (xi - L) + eta^2)), a unit source and a unit counter-clockwise
vortex induce

    source:  u_t = ln(r1 / r2) / 2 pi,  u_n = beta / 2 pi;      vortex:  u_t = beta / 2 pi,  u_n = -ln(r1 / r2) / 2 pi

(n is t turned clockwise, so a counter-clockwise vortex turns the other way in these coordinates).

The velocity anywhere is U_inf plus the sum over panels; Cp = 1 - |u|^2 / |U_inf|^2, and the lift follows from
the circulation (Kutta-Joukowski) or from the surface pressure. Costs O(F^2) for F panels to solve and O(N F)
for N field points: about 0.4 s for an airfoil of 260 panels and 10k points. It is the inviscid core of
XFOIL-like tools: no boundary layer, no separation; used as an input that carries the physics of lift.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from geoop.errors import GeometryError

#: a body whose sharpest corner turns by less than this (radians of interior angle above) has no trailing edge
TRAILING_EDGE_ANGLE = np.radians(90.0)
#: within this many of its lengths a panel acts by its exact formulas, beyond as a point source and vortex
NEAR_FIELD = 8.0


def closed_outline(points: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The node indices `(F,)` of a closed 2D curve given as unordered edges `(F, 2)`, in counter-clockwise order
    (the body on the left), starting at its sharpest corner."""
    edges = np.asarray(edges, dtype=np.int64)
    neighbours: dict[int, list[int]] = {}
    for a, b in edges:
        neighbours.setdefault(int(a), []).append(int(b))
        neighbours.setdefault(int(b), []).append(int(a))
    if any(len(v) != 2 for v in neighbours.values()):
        raise GeometryError("the body's outline is not one closed curve (a node with other than two edges)",
                            fix="give the panel method a single closed body outline")
    start = int(edges[0, 0])
    loop, previous = [start], None
    while True:
        here = loop[-1]
        step = [n for n in neighbours[here] if n != previous][0] if previous is not None else neighbours[here][0]
        if step == start:
            break
        previous = here
        loop.append(step)
    if len(loop) != len(neighbours):
        raise GeometryError(f"the body's outline has {len(neighbours)} nodes but one loop holds {len(loop)}",
                            fix="give the panel method a single closed body outline (one body)")
    loop = np.array(loop)
    p = points[loop]
    area = 0.5 * np.sum(p[:, 0] * np.roll(p[:, 1], -1) - np.roll(p[:, 0], -1) * p[:, 1])
    if area < 0:
        loop = loop[::-1]
    return np.roll(loop, -int(np.argmin(_interior_angles(points[loop]))))


def _interior_angles(p: np.ndarray) -> np.ndarray:
    """`(F,)` interior angle at each vertex of a counter-clockwise polygon."""
    back, ahead = np.roll(p, 1, axis=0) - p, np.roll(p, -1, axis=0) - p
    turn = np.arctan2(back[:, 0] * ahead[:, 1] - back[:, 1] * ahead[:, 0], (back * ahead).sum(1))
    return np.mod(-turn, 2 * np.pi)


def _panel_terms(panels_a: np.ndarray, panels_b: np.ndarray, points: np.ndarray,
                 on_panel: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """ln(r1 / r2) / 2 pi and beta / 2 pi `(N, F)` of every panel at `points (N, 2)`, and the panels' unit tangents
    and outward normals `(F, 2)`. `on_panel (N,)`: the panel each point is the midpoint of (-1: none), seen
    from its outer side (beta = pi, ln = 0: 1/2 and 0 after the 2 pi)."""
    t = panels_b - panels_a
    length = np.linalg.norm(t, axis=1)
    t = t / length[:, None]
    n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    rel_x = points[:, :1] - panels_a[None, :, 0]
    rel_y = points[:, 1:] - panels_a[None, :, 1]
    log, beta = _log_and_angle(rel_x * t[:, 0] + rel_y * t[:, 1], rel_x * n[:, 0] + rel_y * n[:, 1], length)
    if on_panel is not None:
        rows = np.flatnonzero(on_panel >= 0)
        beta[rows, on_panel[rows]] = 0.5
        log[rows, on_panel[rows]] = 0.0
    return log, beta, t, n


def _pair_terms(a: np.ndarray, b: np.ndarray, points: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_panel_terms` for pairs: panel k (from `a[k]` to `b[k]`) at `points[k]`, all `(K,)` or `(K, 2)`."""
    length = np.linalg.norm(b - a, axis=1)
    t = (b - a) / length[:, None]
    n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    rel = points - a
    log, beta = _log_and_angle((rel * t).sum(1), (rel * n).sum(1), length)
    return log, beta, t, n


def _log_and_angle(xi: np.ndarray, eta: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ln(r1 / r2) / 2 pi and beta / 2 pi from panel coordinates (see the module docstring)."""
    ahead = xi - length
    log = 0.5 * np.log(np.maximum(xi * xi + eta * eta, 1e-300) / np.maximum(ahead * ahead + eta * eta, 1e-300))
    beta = np.arctan2(eta * length, xi * ahead + eta * eta)  # the angle from (P - A) to (P - B), in (-pi, pi]
    return log / (2 * np.pi), beta / (2 * np.pi)


def _influence(panels_a: np.ndarray, panels_b: np.ndarray, points: np.ndarray, on_panel: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Velocities `(N, F, 2)` induced at `points (N, 2)` by a unit source and a unit vortex on each panel (see
    `_panel_terms`)."""
    log, beta, t, n = _panel_terms(panels_a, panels_b, points, on_panel)
    source = log[..., None] * t[None] + beta[..., None] * n[None]
    vortex = beta[..., None] * t[None] - log[..., None] * n[None]  # (t, n) is left-handed: n is t turned clockwise
    return source, vortex


@dataclass(frozen=True)
class PanelSolution:
    """A solved body: panel corners `(F + 1, 2)` (counter-clockwise, the trailing edge first and last),
    source strengths `(F,)`, the shared vortex strength, and the free stream `(2,)`."""

    corners: np.ndarray
    sigma: np.ndarray
    gamma: float
    freestream: np.ndarray

    def velocity(self, points: np.ndarray, chunk: int = 4096, exact_within: float = NEAR_FIELD) -> np.ndarray:
        """`(N, 2)` velocity at `points (N, 2)` outside the body (a point on a panel gets the outer side's).

        A panel farther than `exact_within` of its lengths from a point acts on it as a point source and a
        point vortex of its total strength at its midpoint (the neglected quadrupole is below (L / 2r)^2 / 3,
        0.1% at 8 lengths), nearer ones by the exact formulas: the same velocities several times faster."""
        points = np.asarray(points, dtype=np.float64)
        a, b = self.corners[:-1], self.corners[1:]
        mid, length = (a + b) / 2, np.linalg.norm(b - a, axis=1)
        source, vortex = self.sigma * length / (2 * np.pi), self.gamma * length / (2 * np.pi)
        out = np.empty((len(points), 2))
        for start in range(0, len(points), chunk):  # every panel as a point source and vortex
            dx = points[start:start + chunk, :1] - mid[None, :, 0]
            dy = points[start:start + chunk, 1:] - mid[None, :, 1]
            inv = 1.0 / np.maximum(dx * dx + dy * dy, 1e-300)
            dx *= inv
            dy *= inv
            out[start:start + chunk, 0] = dx @ source - dy @ vortex
            out[start:start + chunk, 1] = dy @ source + dx @ vortex
        pairs = cKDTree(points).sparse_distance_matrix(cKDTree(mid), exact_within * float(length.max()),
                                                         output_type="ndarray")
        keep = pairs["v"] < exact_within * length[pairs["j"]]
        point, panel = pairs["i"][keep].astype(np.int64), pairs["j"][keep].astype(np.int64)
        if len(point):  # near pairs: the exact panel in place of its point approximation
            log, beta, t, n = _pair_terms(a[panel], b[panel], points[point])
            exact = (log * self.sigma[panel] + self.gamma * beta)[:, None] * t + \
                (beta * self.sigma[panel] - self.gamma * log)[:, None] * n
            d = points[point] - mid[panel]
            inv = 1.0 / np.maximum((d * d).sum(1), 1e-300)
            approx = np.stack([(source[panel] * d[:, 0] - vortex[panel] * d[:, 1]) * inv,
                               (source[panel] * d[:, 1] + vortex[panel] * d[:, 0]) * inv], axis=1)
            np.add.at(out, point, exact - approx)
        return out + self.freestream

    @property
    def circulation(self) -> float:
        """Counter-clockwise circulation around the body, gamma times its perimeter."""
        return self.gamma * float(np.linalg.norm(np.diff(self.corners, axis=0), axis=1).sum())

    def lift_coefficient(self, chord: float = 1.0) -> float:
        """Kutta-Joukowski: cl = -2 Gamma / (|U_inf| c) (a clockwise circulation lifts)."""
        return -2 * self.circulation / (float(np.linalg.norm(self.freestream)) * chord)


def solve_panels(outline: np.ndarray, freestream: np.ndarray, kutta: bool | None = None) -> PanelSolution:
    """Hess-Smith solution for the closed counter-clockwise `outline (F, 2)` (the trailing edge first, see
    `closed_outline`) in the free stream `(2,)`. `kutta`: impose the Kutta condition at the first corner
    (default: when its interior angle is below 90 degrees, i.e. a sharp trailing edge)."""
    outline = np.asarray(outline, dtype=np.float64)
    freestream = np.asarray(freestream, dtype=np.float64)
    if kutta is None:
        kutta = bool(_interior_angles(outline)[0] < TRAILING_EDGE_ANGLE)
    corners = np.vstack([outline, outline[:1]])
    a, b = corners[:-1], corners[1:]
    f = len(a)
    mid = (a + b) / 2
    t = (b - a) / np.linalg.norm(b - a, axis=1, keepdims=True)
    n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    source, vortex = _influence(a, b, mid, on_panel=np.arange(f))
    matrix = np.zeros((f + 1, f + 1))
    rhs = np.zeros(f + 1)
    matrix[:f, :f] = np.einsum("ijk,ik->ij", source, n)
    matrix[:f, f] = np.einsum("ijk,ik->i", vortex, n)
    rhs[:f] = -(n @ freestream)
    if kutta:  # tangential velocity at the two trailing-edge panels: u.t_1 + u.t_F = 0
        for i in (0, f - 1):
            matrix[f, :f] += source[i] @ t[i]
            matrix[f, f] += (vortex[i] @ t[i]).sum()
            rhs[f] -= freestream @ t[i]
    else:
        matrix[f, f] = 1.0
    solution = np.linalg.solve(matrix, rhs)
    return PanelSolution(corners, solution[:f], float(solution[f]), freestream)


#: the smallest Reynolds number of the run from the stagnation point the friction estimate is taken at
MIN_RUN_REYNOLDS = 1e4


def flat_plate_friction(loop_points: np.ndarray, loop_velocity: np.ndarray, speed: float, viscosity: float
                        ) -> np.ndarray:
    """`(F, 2)` skin-friction vectors (the fluid on the wall, over the free stream's dynamic pressure) at the
    nodes of a closed outline `(F, 2)` with the inviscid surface velocity `(F, 2)` there: the turbulent
    flat-plate law cf = 0.0592 Re_s^(-1/5) of the run s along the surface from the stagnation point (the
    slowest node; the shorter way round), scaled by (u_e / U_inf)^2 and pointing along the surface flow.
    Prandtl's one-seventh-power law: a fully turbulent boundary layer, no pressure gradient, no separation."""
    step = np.linalg.norm(np.diff(loop_points, axis=0, append=loop_points[:1]), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(step)[:-1]])
    stagnation = int(np.argmin(np.linalg.norm(loop_velocity, axis=1)))
    ahead = np.mod(arc - arc[stagnation], step.sum())
    run = np.minimum(ahead, step.sum() - ahead)
    edge = np.linalg.norm(loop_velocity, axis=1)
    reynolds = np.maximum(edge * run / viscosity, MIN_RUN_REYNOLDS)
    cf = 0.0592 * reynolds ** -0.2 * (edge / speed) ** 2
    return cf[:, None] * loop_velocity / np.maximum(edge, 1e-300)[:, None]


def panel_flow_fields(geometry, body: str, freestream: str, viscosity: float | None = None
                      ) -> dict[str, np.ndarray]:
    """Inviscid flow around the body of a 2D fluid mesh, at its points: `u_potential (N, 2)`, `p_potential (N,)`
    (kinematic, (|U_inf|^2 - |u|^2) / 2) and `cp_potential (N,)`, from the body's outline (the boundary edges on
    the 0/1 point field `body`) and the free stream (the input field `freestream`, the same at every point). On
    the body's nodes the velocity is the mean of the two adjacent panels' (on their outer side). With the
    kinematic `viscosity`, also `cf_potential (N, 2)`: the flat-plate skin friction under that flow on the
    body's nodes (`flat_plate_friction`), zero elsewhere."""
    from geoop.metrics.forces import body_faces

    mask = geometry.point_mask(body)
    faces, _ = body_faces(geometry, within=mask)
    loop = closed_outline(geometry.points, faces)
    stream = np.asarray(geometry.point_data[freestream], dtype=np.float64).reshape(geometry.n_points, -1)[0]
    solution = solve_panels(geometry.points[loop], stream)
    u = solution.velocity(geometry.points)
    a, b = solution.corners[:-1], solution.corners[1:]
    source, vortex = _influence(a, b, (a + b) / 2, on_panel=np.arange(len(a)))
    on_panels = stream + np.einsum("nfk,f->nk", source, solution.sigma) + solution.gamma * vortex.sum(1)
    u[loop] = (on_panels + np.roll(on_panels, 1, axis=0)) / 2  # node k sits between panels k - 1 and k
    speed2 = float(stream @ stream)
    p = 0.5 * (speed2 - (u**2).sum(1))
    out = {"u_potential": u, "p_potential": p, "cp_potential": p / (0.5 * speed2)}
    if viscosity is not None:
        out["cf_potential"] = np.zeros_like(u)
        out["cf_potential"][loop] = flat_plate_friction(geometry.points[loop], u[loop], np.sqrt(speed2), viscosity)
    return out
