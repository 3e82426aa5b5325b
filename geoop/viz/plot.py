"""PNG pictures: 2D meshes as shaded triangles, 3D surfaces as lit polygons, point clouds as dots; around a body
in a 3D volume, the body's surface fields on its faces and the volume fields on a plane through it."""
from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from geoop.geometry.geometry import Geometry
from geoop.geometry.slicing import slice_tetrahedra

_MAX_POINTS = 30_000  # scatter plots beyond this are subsampled (evenly, deterministically)
_MAX_FACES = 60_000


def _scalar(geometry: Geometry, field: str | None) -> np.ndarray | None:
    if field is None:
        return None
    value = np.asarray(geometry.point_data[field], dtype=np.float64)
    return value if value.ndim == 1 else np.linalg.norm(value.reshape(len(value), -1), axis=1)


def _plot_2d(ax, geometry: Geometry, values: np.ndarray | None, limits: tuple[float, float] | None = None):
    p = geometry.points
    tris = geometry.simplices if geometry.cell_dim == 2 else None
    mappable = None
    if tris is not None and len(tris):
        if values is not None:
            lo, hi = limits or (None, None)
            mappable = ax.tripcolor(p[:, 0], p[:, 1], tris, values, shading="gouraud", cmap="viridis",
                                    vmin=lo, vmax=hi)
        else:
            ax.triplot(p[:, 0], p[:, 1], tris, lw=0.3, color="0.6")
        ax.add_collection(LineCollection(p[geometry.boundary_facets], colors="k", linewidths=0.8))
    else:
        step = max(1, len(p) // _MAX_POINTS)
        colors = {} if values is None else {"c": values[::step], "cmap": "viridis", "vmin": (limits or (None,))[0],
                                            "vmax": (limits or (None, None))[1]}
        dots = ax.scatter(p[::step, 0], p[::step, 1], s=2, **colors)
        mappable = dots if values is not None else None
    ax.set_aspect("equal")
    return mappable


def _lit_faces(ax, points: np.ndarray, faces: np.ndarray, values: np.ndarray | None,
               limits: tuple[float, float] | None, ambient: float = 0.45):
    """Draw triangles `faces (F, 3)` lit from above (`ambient`: the brightness of a face turned away from the
    light), coloured by node `values` (their corners' mean) or plain; returns the colour mapping (None when
    plain)."""
    faces = faces[:: max(1, len(faces) // _MAX_FACES)]
    tri = points[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-300)
    light = np.clip(normal @ np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8]), 0, 1)
    mappable = None
    if values is not None:
        v = values[faces].mean(1)
        norm = Normalize(*(limits or (v.min(), v.max())))
        colors = colormaps["viridis"](norm(v))
        mappable = ScalarMappable(norm=norm, cmap="viridis")
        mappable.set_array(v)
    else:
        colors = np.ones((len(faces), 4)) * [0.55, 0.65, 0.8, 1.0]
    colors[:, :3] *= (ambient + (1 - ambient) * light)[:, None]
    ax.add_collection3d(Poly3DCollection(tri, facecolors=colors, edgecolors="none"))
    return mappable


def _frame_3d(ax, lo: np.ndarray, hi: np.ndarray) -> None:
    center, half = (lo + hi) / 2, (hi - lo).max() / 2
    for set_lim, c in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), center, strict=True):
        set_lim(c - half, c + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=25, azim=-60)


def _plot_3d(ax, geometry: Geometry, values: np.ndarray | None, limits: tuple[float, float] | None = None):
    p = geometry.points
    mappable = None
    if geometry.kind in ("surface", "volume"):
        mappable = _lit_faces(ax, p, np.asarray(geometry.trimesh.faces), values, limits)
    else:
        step = max(1, len(p) // _MAX_POINTS)
        colors = {"c": "tab:blue"} if values is None else {"c": values[::step], "cmap": "viridis",
                                                           "vmin": (limits or (None,))[0],
                                                           "vmax": (limits or (None, None))[1]}
        dots = ax.scatter(*p[::step].T, s=1, **colors)
        mappable = dots if values is not None else None
    _frame_3d(ax, *geometry.bounds)
    return mappable


def body_faces_of(geometry: Geometry, body: str) -> np.ndarray:
    """The triangles `(F, 3)` of a volume mesh's boundary whose corners all lie on the body (the 0/1 point
    field `body`)."""
    facets = geometry.boundary_facets
    return facets[geometry.point_mask(body)[facets].all(axis=1)]


def _plot_body(ax, geometry: Geometry, values: np.ndarray | None, limits: tuple[float, float] | None,
               faces: np.ndarray):
    """The body's faces coloured by `values` (lit softly, so that the colours stay readable), filling the
    panel at its own proportions."""
    mappable = _lit_faces(ax, geometry.points, faces, values, limits, ambient=0.75)
    corners = geometry.points[np.unique(faces)]
    lo, hi = corners.min(0), corners.max(0)
    for set_lim, a, b in zip((ax.set_xlim, ax.set_ylim, ax.set_zlim), lo, hi, strict=True):
        set_lim(a, b)
    ax.set_box_aspect(hi - lo, zoom=1.3)
    ax.view_init(elev=25, azim=-60)
    ax.set_axis_off()
    return mappable


def _plot_section(ax, geometry: Geometry, values: np.ndarray | None, limits: tuple[float, float] | None,
                  plane: tuple[int, float]):
    """The volume's cells cut by the plane `x[axis] = offset`, coloured by `values` (the body shows as the hole
    it leaves)."""
    axis, offset = plane
    cut = slice_tetrahedra(geometry.points, geometry.simplices, np.zeros(geometry.n_points) if values is None
                           else values, axis, offset)
    lo, hi = limits or (None, None)
    mappable = ax.tripcolor(cut.points[:, 0], cut.points[:, 1], cut.triangles, cut.values, shading="gouraud",
                            cmap="viridis", vmin=lo, vmax=hi)
    names = "xyz"
    ax.set_xlabel(names[cut.axes[0]])
    ax.set_ylabel(names[cut.axes[1]])
    ax.set_aspect("equal")
    return mappable if values is not None else None


def _grid_slice(geometry: Geometry, shape: Sequence[int], values: np.ndarray | None) -> np.ndarray:
    """The `(NX, NY)` image of node values on a box grid of `shape` (`box_grid`'s order, the last axis fastest):
    all of a 2D grid, the middle layer of the last axis of a 3D one; masked where the grid's `inside` is 0."""
    layer = (slice(None), slice(None)) + ((shape[2] // 2,) if len(shape) == 3 else ())
    image = (np.zeros(len(geometry.points)) if values is None else values).reshape(shape)[layer]
    if "inside" in geometry.point_data:
        image = np.ma.masked_where(np.asarray(geometry.point_data["inside"]).reshape(shape)[layer] == 0, image)
    return image


def _plot_grid(ax, geometry: Geometry, image: np.ndarray, limits: tuple[float, float] | None = None):
    lo, hi = geometry.bounds
    ax.set_facecolor("0.85")  # outside the domain
    mappable = ax.imshow(image.T, origin="lower", extent=(lo[0], hi[0], lo[1], hi[1]), cmap="viridis",
                         vmin=(limits or (None,))[0], vmax=(limits or (None, None))[1], interpolation="nearest")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    return mappable


def plot_fields(geometry: Geometry, fields: Sequence[str | None], path: str | Path,
                titles: Sequence[str] | None = None, shared: Sequence[str] | Sequence[Sequence[str]] = (),
                suptitle: str | None = None, dpi: int = 120, grid: Sequence[int] | None = None,
                body: str | None = None, on_body: Collection[str] = (), rows: Sequence[int] | None = None
                ) -> Path:
    """Write a PNG with one panel per point field of `geometry` (None: the bare geometry; vectors by magnitude).
    Fields named in `shared` use one color scale (e.g. truth and prediction; several such groups as a sequence
    of sequences). `grid`: `geometry` is a box grid of that shape (`box_grid`); its panels are images of the
    grid (3D: the slice through the middle of the last axis), which cost no more for a million nodes than for
    a thousand. `body`: a 3D volume's 0/1 point field marking a body in it; the fields in `on_body` are drawn
    on the body's faces, the others on the plane through the body's middle across its width (y). `rows`: the
    number of panels in each row (default: all in one)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    values = [_scalar(geometry, f) for f in fields]
    if grid is not None:
        values = [_grid_slice(geometry, grid, v) for v in values]
    groups = [shared] if shared and isinstance(shared[0], str) else list(shared)
    limits = {}
    for group in groups:
        common = [v for f, v in zip(fields, values, strict=True) if f in group and v is not None]
        if common:
            limits.update(dict.fromkeys(group, (min(v.min() for v in common), max(v.max() for v in common))))
    rows = list(rows) if rows else [len(fields)]
    columns = max(rows)
    place = [(r, c) for r, n in enumerate(rows) for c in range(n)]
    around = body is not None and geometry.dim == 3 and geometry.kind == "volume" and body in geometry.point_data
    faces = body_faces_of(geometry, body) if around else None
    plane = (1, float(geometry.points[geometry.point_mask(body), 1].mean())) if around else None
    heights = [5.0] * len(rows)
    if around:  # a row of sections is as tall as the section's shape needs
        lo, hi = geometry.bounds
        flat_height = 1.6 + 4.2 * (hi[2] - lo[2]) / (hi[0] - lo[0])
        for k, name in enumerate(fields):
            heights[place[k][0]] = 4.5 if name in on_body else flat_height
    fig = Figure(figsize=(5.5 * columns, sum(heights)))  # no pyplot: headless, leaves notebooks' backend alone
    layout = fig.add_gridspec(len(rows), columns, height_ratios=heights)
    for k, (name, v) in enumerate(zip(fields, values, strict=True)):
        if around:
            flat = name not in on_body
            draw = (lambda ax, g, v, lim: _plot_section(ax, g, v, lim, plane)) if flat else (
                lambda ax, g, v, lim: _plot_body(ax, g, v, lim, faces))
        else:
            flat = geometry.dim == 2 or grid is not None
            draw = _plot_grid if grid is not None else _plot_2d if geometry.dim == 2 else _plot_3d
        r, c = place[k]
        ax = fig.add_subplot(layout[r, c], projection=None if flat else "3d")
        mappable = draw(ax, geometry, v, limits.get(name))
        if mappable is not None:
            fig.colorbar(mappable, ax=ax, shrink=0.7, label=name)
        default = name or (Path(geometry.source).name if geometry.source else geometry.kind)
        title = titles[k] if titles else default
        if around and flat:
            title += f" (y = {plane[1]:.3g})"
        ax.set_title(title)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


def plot_geometry(geometry: Geometry, path: str | Path, field: str | None = None, title: str | None = None,
                  dpi: int = 120) -> Path:
    """Write a PNG of `geometry` (colored by point field `field`, its magnitude for vectors) to `path`."""
    return plot_fields(geometry, [field], path, titles=[title] if title else None, dpi=dpi)


def plot_surface_profile(geometry: Geometry, body: str, fields: Sequence[str], path: str | Path,
                         suptitle: str | None = None, dpi: int = 120) -> Path:
    """Write a PNG of surface fields along a body, one panel per field: the values on the body's nodes (the
    0/1 point field `body`) against the position along the body's length (its first coordinate: the chord of
    an airfoil), with `<field>_true` beside the prediction where the geometry has it; vector fields by their
    first component (the streamwise skin friction); Cp drawn upside down, as aerodynamicists do."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    on = geometry.point_mask(body)
    x = geometry.points[on, 0]
    order = np.argsort(x)
    fig = Figure(figsize=(5.5 * len(fields), 4.2))
    for k, name in enumerate(fields):
        ax = fig.add_subplot(1, len(fields), k + 1)
        for suffix, style, label in (("_true", "k.", "true"), ("", "C1.", "predicted")):
            if name + suffix not in geometry.point_data:
                continue
            v = np.asarray(geometry.point_data[name + suffix]).reshape(geometry.n_points, -1)[on, 0]
            ax.plot(x[order], v[order], style, ms=2.5, label=label)
        ax.set_xlabel("x (along the body)")
        ax.set_ylabel(name)
        ax.set_title(f"{name} on the body")
        if name.lower().startswith("cp"):
            ax.invert_yaxis()
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return path


#: the views of a 3D body's surface picture: (title, elevation, azimuth) in degrees
BODY_VIEWS = (("front, left, above", 20, -130), ("rear, right, above", 20, 50), ("from below", -70, -90))


def plot_body_views(geometry: Geometry, body: str, fields: Sequence[str], path: str | Path,
                    suptitle: str | None = None, dpi: int = 100) -> Path:
    """Write a PNG of surface fields on a 3D body seen from several sides (`BODY_VIEWS`): for each field a row
    of the truth, where the geometry has `<field>_true`, and a row of the prediction on the same colour scale.
    `geometry`: a volume mesh around the body (the 0/1 point field `body` marks its nodes; its faces are the
    mesh's boundary faces there) or the body's own closed surface; vectors by their magnitude."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    faces = body_faces_of(geometry, body) if geometry.kind == "volume" else np.asarray(geometry.trimesh.faces)
    rows = [(f"{kind}{name}", name) for name in fields for kind in ("true ", "")
            if kind == "" or f"{name}_true" in geometry.point_data]
    fig = Figure(figsize=(5.0 * len(BODY_VIEWS), 3.6 * len(rows)))
    layout = fig.add_gridspec(len(rows), len(BODY_VIEWS))
    for r, (label, name) in enumerate(rows):
        shown = _scalar(geometry, f"{name}_true" if label.startswith("true") else name)
        both = [_scalar(geometry, f)[faces] for f in (name, f"{name}_true") if f in geometry.point_data]
        limits = (min(v.min() for v in both), max(v.max() for v in both))
        for c, (view, elevation, azimuth) in enumerate(BODY_VIEWS):
            ax = fig.add_subplot(layout[r, c], projection="3d")
            mappable = _plot_body(ax, geometry, shown, limits, faces)
            ax.view_init(elev=elevation, azim=azimuth)
            ax.set_title(f"{'true' if label.startswith('true') else 'predicted'} {name}: {view}")
        fig.colorbar(mappable, ax=ax, shrink=0.7, label=name)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=dpi)
    return path
