"""Force coefficients from surface fields, as a solver's `forceCoeffs` computes them.

For body faces f with area (length in 2D) A_f and unit normal m_f pointing out of the body into the fluid,
pressure p_f and the shear stress tau_f of the fluid on the wall (in the solver's units: per unit density
for an incompressible solver, which then takes rho = 1, as its `forceCoeffs` does with `rhoInf 1`):

    F = sum_f A_f (-(p_f - p_inf) m_f + tau_f),    C_d = F . d / (1/2 rho |U_inf|^2 A_ref),
                                                   C_l = F . l / (1/2 rho |U_inf|^2 A_ref),

d the free-stream direction and l the lift direction (d turned by +90 degrees in 2D; in 3D `lift` projected
orthogonal to d). A constant p_inf integrates to zero over a closed body. Values given at the nodes are carried
to the faces as the mean of their corners (the trapezoidal rule). OpenFOAM's `wallShearStress` writes the
stress of the wall on the fluid: pass its negative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from geoop.errors import FieldError, GeometryError
from geoop.geometry.geometry import Geometry


@dataclass(frozen=True)
class ForceCoefficients:
    """Drag and lift coefficients with their pressure and friction parts, and the force vector `(d,)`."""

    cd: float
    cl: float
    cd_pressure: float
    cd_friction: float
    cl_pressure: float
    cl_friction: float
    force: tuple[float, ...]

    def to_dict(self) -> dict[str, float | tuple[float, ...]]:
        return asdict(self)


def body_faces(surface: Geometry, within: np.ndarray | None = None, faces: np.ndarray | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
    """Faces `(F, d)` (node indices) of a body and their unit normals `(F, d)` out of the body.

    The faces are `faces` (edges in 2D, triangles in 3D, closing the body), or those of `surface`: a volume
    mesh of the fluid with `within (N,)` bool marking the body's nodes (its boundary facets inside the mask,
    whose outward normals point out of the fluid, into the body), or the body's own closed surface (3D
    triangles) or outline (2D line cells)."""
    if faces is not None:
        faces = np.asarray(faces, dtype=np.int64)
        normals = _facet_normals(surface.points, faces)
        if surface.dim == 2:
            return faces, normals * _outward_signs_2d(surface.points, faces, normals)[:, None]
        import trimesh

        mesh = trimesh.Trimesh(surface.points, faces, process=False, validate=False)
        if not mesh.is_watertight:
            raise GeometryError("the body faces do not close a volume: their outward side is undefined",
                                path=surface.source, fix="pass the closed body's faces")
        trimesh.repair.fix_normals(mesh)
        return np.asarray(mesh.faces), np.asarray(mesh.face_normals)
    if surface.kind == "volume":
        if within is None:
            raise FieldError("a volume mesh needs `within`, the mask of the body's nodes", path=surface.source)
        faces = surface.boundary_facets[np.asarray(within, dtype=bool)[surface.boundary_facets].all(1)]
        return faces, -_facet_normals(surface.points, faces)
    if surface.kind == "surface" and surface.dim == 3:
        mesh = surface.trimesh
        if not mesh.is_watertight:
            raise GeometryError("the body surface is not closed: its outward side is undefined", path=surface.source,
                                fix="pass the closed body, or the fluid mesh with a mask of the body's nodes")
        return np.asarray(mesh.faces), np.asarray(mesh.face_normals)
    if surface.kind == "curve" and surface.dim == 2:
        faces = surface.cells["line"]
        normals = _facet_normals(surface.points, faces)
        return faces, normals * _outward_signs_2d(surface.points, faces, normals)[:, None]
    raise GeometryError(f"a {surface.dim}D {surface.kind} is not a body surface", path=surface.source,
                        fix="pass the body's surface (3D) or outline (2D), or the fluid mesh with a body mask")


def _facet_normals(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Right-hand unit normals of edges `(F, 2)` in 2D ((dy, -dx): outward for a counter-clockwise loop) or
    triangles `(F, 3)` in 3D."""
    p = points[faces]
    if points.shape[1] == 2:
        t = p[:, 1] - p[:, 0]
        n = np.stack([t[:, 1], -t[:, 0]], axis=1)
    else:
        n = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
    return n / np.linalg.norm(n, axis=1, keepdims=True)


def _outward_signs_2d(points: np.ndarray, edges: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """+1 where an edge's normal points out of the closed curves the edges form, -1 where it points in: a
    point just off each edge's midpoint along its normal is inside iff a ray from it crosses the curves an
    odd number of times."""
    a, b = points[edges[:, 0]], points[edges[:, 1]]
    length = np.linalg.norm(b - a, axis=1)
    probe = (a + b) / 2 + 1e-3 * length[:, None] * normals
    signs = np.empty(len(edges))
    for start in range(0, len(edges), 512):
        q = probe[start:start + 512, None, :]
        straddle = (a[None, :, 1] > q[..., 1]) != (b[None, :, 1] > q[..., 1])
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = a[None, :, 0] + (q[..., 1] - a[None, :, 1]) * (b[None, :, 0] - a[None, :, 0]) / (
                b[None, :, 1] - a[None, :, 1])
        inside = (straddle & (x_cross > q[..., 0])).sum(1) % 2 == 1
        signs[start:start + 512] = np.where(inside, -1.0, 1.0)
    return signs


def _on_faces(values: np.ndarray, faces: np.ndarray, n_points: int, name: str) -> np.ndarray:
    """Face values `(F, ...)`: given per face, or per node `(N, ...)` averaged over each face's corners."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == len(faces) and len(faces) != n_points:
        return values
    if len(values) == n_points:
        return values[faces].mean(axis=1)
    raise FieldError(f"{name} has {len(values)} rows: give one per face ({len(faces)}) or per node ({n_points})")


def force_coefficients(surface: Geometry, p: np.ndarray, wall_shear: np.ndarray | None = None, *,
                       u_inf: float | np.ndarray, rho: float = 1.0, ref_area: float = 1.0,
                       direction: np.ndarray | None = None, lift: np.ndarray | None = None,
                       within: np.ndarray | None = None, faces: np.ndarray | None = None) -> ForceCoefficients:
    """Drag and lift coefficients of a body from its pressure `p` (`(F,)` per face or `(N,)` per node) and,
    if given, wall shear stress `wall_shear` (`(F, d)` or `(N, d)`, the fluid on the wall).

    `u_inf`: the free-stream velocity `(d,)`, or its speed with `direction` `(d,)`. `ref_area`: the reference
    area (in 2D the chord times the span of the solver's one-cell mesh). `lift` (3D): the up direction, made
    orthogonal to the drag direction (default +z). The faces and their outward normals come from `surface`,
    `within` and `faces` (see `body_faces`). Fields already divided by the dynamic pressure
    (Cp, Cf) take rho = 2 and a free stream of speed 1, so that 1/2 rho |U_inf|^2 = 1."""
    faces, normals = body_faces(surface, within, faces)
    dim = surface.dim
    velocity = np.atleast_1d(np.asarray(u_inf, dtype=np.float64))
    if velocity.size == 1:
        if direction is None:
            raise FieldError("a free-stream speed needs its `direction` (or pass the velocity vector as u_inf)")
        velocity = float(velocity[0]) * np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
    speed = float(np.linalg.norm(velocity))
    drag = velocity / speed
    if dim == 2:
        up = np.array([-drag[1], drag[0]])
    else:
        up = np.array([0.0, 0.0, 1.0]) if lift is None else np.asarray(lift, dtype=np.float64)
        up = up - (up @ drag) * drag
        up /= np.linalg.norm(up)
    corners = surface.points[faces]
    if dim == 2:
        area = np.linalg.norm(corners[:, 1] - corners[:, 0], axis=1)
    else:
        area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)
    pressure = -(area * _on_faces(p, faces, surface.n_points, "p").reshape(-1))[:, None] * normals
    friction = np.zeros_like(pressure)
    if wall_shear is not None:
        friction = area[:, None] * _on_faces(wall_shear, faces, surface.n_points, "wall_shear")[:, :dim]
    q = 0.5 * rho * speed**2 * ref_area
    fp, ff = pressure.sum(0), friction.sum(0)
    return ForceCoefficients(cd=float((fp + ff) @ drag / q), cl=float((fp + ff) @ up / q),
                             cd_pressure=float(fp @ drag / q), cd_friction=float(ff @ drag / q),
                             cl_pressure=float(fp @ up / q), cl_friction=float(ff @ up / q),
                             force=tuple(float(v) for v in fp + ff))


@dataclass(frozen=True)
class ForceSpec:
    """Which fields of a dataset give a body's forces: `pressure` (and `shear`, if any) on the nodes of the
    point mask `surface`, the free stream from the input `freestream` (a vector field), and either
    `coefficients` (the fields are already divided by the dynamic pressure: Cp, Cf) or the density `rho`;
    `ref_area` the reference area, `lift` (3D) the up direction."""

    pressure: str
    surface: str
    freestream: str
    shear: str | None = None
    coefficients: bool = True
    rho: float = 1.0
    ref_area: float = 1.0
    lift: tuple[float, ...] | None = None

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ForceSpec:
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise FieldError(f"unknown force settings {sorted(unknown)}", fix=f"use {sorted(known)}")
        return cls(**{**values, "lift": None if values.get("lift") is None else tuple(values["lift"])})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fields_needed(self) -> list[str]:
        return [f for f in (self.pressure, self.shear) if f is not None]

    def of(self, geometry: Geometry, values: dict[str, np.ndarray] | None = None) -> ForceCoefficients:
        """The coefficients of one sample `geometry` (a fluid mesh holding the surface mask and the free
        stream) from `values` {field: `(N, ...)`} (default: the geometry's own fields)."""
        values = geometry.point_data if values is None else values
        speed = np.asarray(geometry.point_data[self.freestream], dtype=np.float64).reshape(geometry.n_points, -1)
        u_inf = speed[0]
        rho = self.rho
        if self.coefficients:
            u_inf, rho = u_inf / np.linalg.norm(u_inf), 2.0
        return force_coefficients(geometry, values[self.pressure], None if self.shear is None else values[self.shear],
                                  u_inf=u_inf, rho=rho, ref_area=self.ref_area, lift=self.lift,
                                  within=np.asarray(geometry.point_data[self.surface], dtype=bool))


def force_errors(predicted: list[ForceCoefficients], true: list[ForceCoefficients]) -> dict[str, dict[str, float]]:
    """Per coefficient (cl, cd): mean absolute error, R^2 and Spearman's rank correlation of the predicted
    against the true coefficients over a set of samples (NaN where undefined: fewer than 2 samples, or no
    spread)."""
    from scipy.stats import spearmanr

    out = {}
    for name in ("cl", "cd"):
        p = np.array([getattr(c, name) for c in predicted])
        t = np.array([getattr(c, name) for c in true])
        spread = float(((t - t.mean()) ** 2).sum()) if len(t) else 0.0
        r2 = 1 - float(((p - t) ** 2).sum()) / spread if spread > 0 else float("nan")
        rho = float(spearmanr(p, t).statistic) if len(t) > 1 and spread > 0 else float("nan")
        out[name] = {"mae": float(np.abs(p - t).mean()) if len(t) else float("nan"), "r2": r2, "spearman": rho,
                     "samples": len(t)}
    return out
