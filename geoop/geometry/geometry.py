"""`Geometry`: points, cells, fields and everything derived from them, computed once on demand."""
from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from geoop.errors import FieldError, GeometryError
from geoop.geometry import cells as C


def _frozen(a: np.ndarray) -> np.ndarray:
    """A read-only C-ordered copy (the caller's own array is left writable and untouched)."""
    a = np.array(a, order="C", copy=True)
    a.setflags(write=False)
    return a


class Geometry:
    """A point set with optional cells and fields. Immutable: derived data is cached on first use.

    Args:
        points: `(N, d)` coordinates, d in {2, 3}.
        cells: meshio cell-type name -> `(C, k)` node indices.
        point_data: name -> `(N, ...)` per-point fields.
        cell_data: name -> {cell type -> `(C, ...)`} per-cell fields.
        normals: `(N, d)` normals given by the source (point clouds); otherwise derived from cells.
        source: where it came from, used in error messages.
        source_index: `(N,)` index of each point in the source file (points are sorted spatially on load).
        global_data: name -> array of per-geometry values (parameters, descriptors), not tied to points.

    A 3D point set whose z is exactly zero everywhere and that has no 3D cells is stored as 2D (`dim == 2`).
    """

    def __init__(
        self,
        points: np.ndarray,
        cells: dict[str, np.ndarray] | None = None,
        point_data: dict[str, np.ndarray] | None = None,
        cell_data: dict[str, dict[str, np.ndarray]] | None = None,
        normals: np.ndarray | None = None,
        source: str | Path | None = None,
        source_index: np.ndarray | None = None,
        global_data: dict[str, np.ndarray] | None = None,
    ):
        self.source = None if source is None else str(source)
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] not in (2, 3):
            raise GeometryError(f"points must have shape (N, 2) or (N, 3), got {points.shape}", path=source)
        if len(points) == 0:
            raise GeometryError("the geometry has no points", path=source,
                                fix="check that the file is not empty and holds the mesh you expect")
        bad = ~np.isfinite(points).all(axis=1)
        if bad.any():
            raise GeometryError(
                f"{int(bad.sum())} of {len(points)} points have NaN/inf coordinates (first at index "
                f"{int(np.argmax(bad))})", path=source, fix="repair or drop those points before loading")
        cells = {t: np.asarray(c, dtype=np.int64).reshape(len(c), -1) for t, c in (cells or {}).items()}
        cells = {t: c for t, c in cells.items() if len(c)}
        for t, c in cells.items():
            if t not in C.CELL_DIM:
                raise GeometryError(f"unsupported cell type {t!r}", path=source,
                                    fix=f"convert to one of {sorted(C.CELL_DIM)}")
            if c.min() < 0 or c.max() >= len(points):
                raise GeometryError(f"{t} cells reference nodes outside 0..{len(points) - 1}", path=source)
        if points.shape[1] == 3 and C.top_dim(cells) < 3 and not points[:, 2].any():
            points = points[:, :2]
        if normals is not None:
            normals = np.asarray(normals, dtype=np.float64)[:, : points.shape[1]]
            if normals.shape != points.shape:
                raise FieldError(f"normals have shape {normals.shape}, points {points.shape}", path=source)
        self.points = _frozen(points)
        self.cells = {t: _frozen(c) for t, c in cells.items()}
        self.point_data = {k: _frozen(self._check_point_field(k, v)) for k, v in (point_data or {}).items()}
        self.cell_data = {k: {t: _frozen(self._check_cell_field(k, t, a)) for t, a in v.items()}
                          for k, v in (cell_data or {}).items()}
        self._normals = None if normals is None else _frozen(normals)
        self.global_data = {k: _frozen(np.asarray(v)) for k, v in (global_data or {}).items()}
        self.source_index = _frozen(np.arange(len(points)) if source_index is None else
                                    np.asarray(source_index, dtype=np.int64))

    def _check_point_field(self, name: str, value: Any) -> np.ndarray:
        value = np.asarray(value)
        if value.ndim == 0 or len(value) != len(self.points):
            shape = value.shape
            raise FieldError(f"point field {name!r} has shape {shape} but there are {len(self.points)} points",
                             path=self.source, fix="give one value (row) per point, or store it as cell data")
        return value

    def _check_cell_field(self, name: str, cell_type: str, value: Any) -> np.ndarray:
        value = np.asarray(value)
        n = len(self.cells.get(cell_type, ()))
        if value.ndim == 0 or len(value) != n:
            raise FieldError(f"cell field {name!r} on {cell_type} has shape {value.shape} but there are {n} "
                             f"{cell_type} cells", path=self.source, fix="give one value (row) per cell")
        return value

    # ------------------------------------------------------------------ basic facts
    @property
    def dim(self) -> int:
        """Spatial dimension, 2 or 3."""
        return self.points.shape[1]

    @property
    def n_points(self) -> int:
        return len(self.points)

    @cached_property
    def cell_dim(self) -> int:
        """Dimension of the highest cells (-1 for a bare point cloud)."""
        return C.top_dim(self.cells)

    @property
    def kind(self) -> str:
        """'volume' (cells fill the space, incl. planar 2D meshes), 'surface', 'curve' or 'points'."""
        if self.cell_dim == self.dim:
            return "volume"
        return {2: "surface", 1: "curve"}.get(self.cell_dim, "points")

    @cached_property
    def bounds(self) -> np.ndarray:
        """`(2, d)` lower and upper corners of the bounding box."""
        return np.stack([self.points.min(axis=0), self.points.max(axis=0)])

    # ------------------------------------------------------------------ derived from cells
    @cached_property
    def simplices(self) -> np.ndarray:
        """Top-dimensional cells split into simplices, `(S, cell_dim + 1)`."""
        return C.simplices(self.cells, self.cell_dim)[0] if self.cell_dim > 0 else np.zeros((0, 1), np.int64)

    @cached_property
    def simplex_measures(self) -> np.ndarray:
        """`(S,)` length, area or volume of each simplex."""
        return C.simplex_measures(self.points, self.simplices)

    @cached_property
    def measure(self) -> float:
        """Total length, area or volume of the top-dimensional cells."""
        return float(self.simplex_measures.sum())

    @cached_property
    def boundary_facets(self) -> np.ndarray:
        """Outward-oriented boundary of the top cells: triangles `(F, 3)` of a 3D volume mesh, edges `(F, 2)`
        of a 2D mesh, rim edges of an open surface (empty for a closed one)."""
        if self.kind == "surface":
            tris = self.simplices
            edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
            return edges[C.rows_seen_once(edges)]
        if self.cell_dim < 1:
            return np.zeros((0, 2), dtype=np.int64)
        return C.boundary_facets(self.points, self.cells, self.cell_dim)

    @cached_property
    def boundary_mask(self) -> np.ndarray:
        """`(N,)` bool: nodes on `boundary_facets`. All False for closed surfaces and bare point clouds."""
        mask = np.zeros(self.n_points, dtype=bool)
        mask[self.boundary_facets.ravel()] = True
        return _frozen(mask)

    @cached_property
    def is_watertight(self) -> bool:
        """True if the geometry encloses a region: a volume mesh, or a closed, consistently wound surface."""
        if self.kind == "volume":
            return True
        if self.kind != "surface" or self.dim != 3:
            return False
        return bool(self.trimesh.is_watertight and self.trimesh.is_winding_consistent)

    @cached_property
    def trimesh(self):
        """The triangle surface as a `trimesh.Trimesh`: the surface itself, or a volume mesh's boundary.

        Wound outward when the surface is closed."""
        import trimesh

        if self.dim != 3 or self.kind not in ("surface", "volume"):
            raise GeometryError(f"a {self.dim}D {self.kind} has no triangle surface", path=self.source)
        faces = self.simplices if self.kind == "surface" else self.boundary_facets
        mesh = trimesh.Trimesh(self.points, faces, process=False, validate=False)
        if self.kind == "surface" and mesh.is_watertight:
            if not mesh.is_winding_consistent:
                trimesh.repair.fix_winding(mesh)
            if mesh.is_winding_consistent and mesh.volume < 0:
                mesh.invert()
        return mesh

    @property
    def given_normals(self) -> np.ndarray | None:
        """`(N, d)` normals that came with the data (point clouds), or None; `normals` falls back to derived ones."""
        return self._normals

    @cached_property
    def normals(self) -> np.ndarray | None:
        """`(N, d)` unit outward normals: given ones for point clouds; area-weighted facet normals on
        boundary nodes of volume meshes (zero vectors inside); vertex normals of surfaces. None if unknown."""
        if self._normals is not None:
            return self._normals
        if self.kind == "surface" and self.dim == 3:
            return _frozen(np.asarray(self.trimesh.vertex_normals, dtype=np.float64))
        if self.kind != "volume":
            return None
        facets = self.boundary_facets
        p = self.points[facets]
        if self.dim == 2:
            t = p[:, 1] - p[:, 0]
            fn = np.stack([t[:, 1], -t[:, 0]], axis=1)
        else:
            fn = np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0])
        acc = np.zeros_like(self.points)
        for k in range(facets.shape[1]):
            np.add.at(acc, facets[:, k], fn)
        length = np.linalg.norm(acc, axis=1, keepdims=True)
        return _frozen(np.divide(acc, length, out=np.zeros_like(acc), where=length > 0))

    def point_mask(self, name: str, of: str = "the body") -> np.ndarray:
        """`(N,)` bool: the 0/1 point field `name` (saying where `of` applies), or an error naming the fields."""
        if name not in self.point_data:
            raise FieldError(f"mask field {name!r} of {of!r} missing (point fields here: {sorted(self.point_data)})",
                             path=self.source, fix=f"give the geometry a 0/1 point field {name!r} saying where "
                                                   f"{of!r} applies")
        return self.point_data[name].reshape(-1).astype(bool)

    # ------------------------------------------------------------------ convenience
    def with_points(self, points: np.ndarray) -> "Geometry":
        """Same cells and fields on moved points `(N, d)` (e.g. after normalization)."""
        return Geometry(points, self.cells, self.point_data, self.cell_data, self._normals, self.source,
                        self.source_index, self.global_data)

    def with_point_data(self, **fields: np.ndarray) -> "Geometry":
        """A copy with extra or replaced point fields."""
        return Geometry(self.points, self.cells, {**self.point_data, **fields}, self.cell_data, self._normals,
                        self.source, self.source_index, self.global_data)

    def with_global_data(self, **values: np.ndarray | float) -> "Geometry":
        """A copy with extra or replaced global (per-geometry) values."""
        return Geometry(self.points, self.cells, self.point_data, self.cell_data, self._normals, self.source,
                        self.source_index, {**self.global_data, **values})

    def permuted(self, order: np.ndarray) -> "Geometry":
        """Points reordered so that new point i is old point `order[i]`; cells and fields follow."""
        order = np.asarray(order, dtype=np.int64)
        inverse = np.empty_like(order)
        inverse[order] = np.arange(len(order))
        normals = None if self._normals is None else self._normals[order]
        return Geometry(self.points[order], {t: inverse[c] for t, c in self.cells.items()},
                        {k: v[order] for k, v in self.point_data.items()}, self.cell_data, normals, self.source,
                        self.source_index[order], self.global_data)

    def save(self, path: str | Path, **options: Any) -> Path:
        """Write to VTU/VTK/MSH/XDMF/PLY/NPZ (all fields), CSV/XYZ (points), STL/OBJ/OFF/GLB (surface)."""
        from geoop.io import save

        return save(self, path, **options)

    def summary(self) -> dict[str, Any]:
        """Plain-data description used by `geoop info`."""
        info: dict[str, Any] = {
            "source": self.source, "kind": self.kind, "dim": self.dim, "points": self.n_points,
            "cells": {t: len(c) for t, c in self.cells.items()},
            "bounds": self.bounds.tolist(),
            "point_data": {k: list(v.shape[1:]) for k, v in self.point_data.items()},
            "cell_data": {k: {t: list(a.shape[1:]) for t, a in v.items()} for k, v in self.cell_data.items()},
            "boundary_points": int(self.boundary_mask.sum()),
            "global_data": {k: v.tolist() if v.size <= 8 else list(v.shape) for k, v in self.global_data.items()},
        }
        if self.kind in ("surface", "volume"):
            info["measure"] = self.measure
            info["watertight"] = self.is_watertight
        return info

    def __repr__(self) -> str:
        cells = ", ".join(f"{t}={len(c)}" for t, c in self.cells.items()) or "none"
        fields = ", ".join(self.point_data) or "none"
        return f"Geometry({self.kind}, dim={self.dim}, points={self.n_points}, cells: {cells}, fields: {fields})"
