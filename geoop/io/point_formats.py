"""Bare point clouds: NPY `(N, d)` or `(N, 2d)` with normals, NPZ with named arrays, CSV/TXT tables (with or
without a header row), XYZ as whitespace columns `x y z [nx ny nz]`."""
from __future__ import annotations

import warnings
from itertools import islice
from pathlib import Path

import numpy as np

from geoop.errors import CorruptFileError, FieldError, GeometryError
from geoop.geometry.geometry import Geometry
from geoop.io.fields import join_columns, split_columns

_FLOAT_FORMAT = "%.17g"  # round-trips float64 exactly


def _split_normals(table: np.ndarray, path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    if table.ndim != 2 or table.shape[1] not in (2, 3, 4, 6):
        raise GeometryError(f"expected columns x y [z] [nx ny [nz]], got an array of shape {table.shape}",
                            path=path, fix="store points as (N, 3), or (N, 6) with normals")
    d = table.shape[1] if table.shape[1] <= 3 else table.shape[1] // 2
    return table[:, :d], (table[:, d:] if table.shape[1] > 3 else None)


def _warn_dropped(geometry: Geometry, path: Path) -> None:
    if geometry.point_data or geometry.cells:
        warnings.warn(f"{path.name}: {path.suffix} keeps points and normals only; use .npz or .vtu to keep "
                      "cells and fields", stacklevel=2)


def read_npy(path: Path, columns: str | list[str] | None = None) -> Geometry:
    """`(N, d)` points or `(N, 2d)` points and normals; any other width (or `columns` given) is a table read as
    `read_csv` reads one without a header: x, y, z, then `field_0, ...`."""
    table = np.load(path, allow_pickle=False)
    if table.ndim == 2 and (columns or table.shape[1] not in (2, 3, 4, 6)):
        return table_geometry(table.astype(np.float64), _column_names(columns) or default_columns(table.shape[1]),
                              path)
    points, normals = _split_normals(table, path)
    return Geometry(points, normals=normals, source=path)


def write_npy(geometry: Geometry, path: Path) -> None:
    _warn_dropped(geometry, path)
    table = geometry.points if geometry.given_normals is None else np.hstack([geometry.points, geometry.given_normals])
    with open(path, "wb") as f:
        np.save(f, table)


def read_npz(path: Path, points_key: str = "points") -> Geometry:
    """Keys: `points`, optional `normals`, `cells:<type>`, `point_data:<name>`, `cell_data:<name>:<type>`,
    `global_data:<name>`. Any other array is taken as a point field (one row per point)."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if points_key not in arrays:
        raise FieldError(f"no {points_key!r} array; arrays present: {sorted(arrays)}", path=path,
                         fix="name the coordinate array with points_key=... (geoop.load(path, points_key='pos'))")
    points = arrays.pop(points_key)
    normals = arrays.pop("normals", None)
    cells, point_data, cell_data, global_data = {}, {}, {}, {}
    for key, value in arrays.items():
        if key.startswith("global_data:"):
            global_data[key[12:]] = value
        elif key.startswith("cells:"):
            cells[key[6:]] = value
        elif key.startswith("cell_data:"):
            name, cell_type = key[10:].rsplit(":", 1)
            cell_data.setdefault(name, {})[cell_type] = value
        else:
            point_data[key.removeprefix("point_data:")] = value
    return Geometry(points, cells, point_data, cell_data, normals, path, global_data=global_data)


def write_npz(geometry: Geometry, path: Path, compressed: bool = True) -> None:
    arrays = {"points": geometry.points}
    if geometry.given_normals is not None:
        arrays["normals"] = geometry.given_normals
    arrays.update({f"cells:{t}": c for t, c in geometry.cells.items()})
    arrays.update({f"point_data:{k}": v for k, v in geometry.point_data.items()})
    arrays.update({f"cell_data:{k}:{t}": a for k, v in geometry.cell_data.items() for t, a in v.items()})
    arrays.update({f"global_data:{k}": v for k, v in geometry.global_data.items()})
    with open(path, "wb") as f:
        (np.savez_compressed if compressed else np.savez)(f, **arrays)


def default_columns(n: int) -> list[str]:
    """Names of the `n` columns of a table without a header: x, y[, z], then `field_0, field_1, ...`."""
    if n < 3:
        return ["x", "y"][:n]
    return ["x", "y", "z"] + [f"field_{i}" for i in range(n - 3)]


def table_geometry(table: np.ndarray, names: list[str], path: Path) -> Geometry:
    """A point cloud from the columns of `table (N, k)` named `names`: `x, y[, z]` are the coordinates,
    `nx, ny[, nz]` the normals, every other column a scalar field (`v__0, v__1, ...` join into a vector field)."""
    if table.shape[1] != len(names):
        raise FieldError(f"{len(names)} column names ({','.join(names)}) for {table.shape[1]} columns of data",
                         path=path, fix="name every column, e.g. --columns " + ",".join(default_columns(
                             max(table.shape[1], 2))))
    lower = [h.lower() for h in names]
    if len(set(lower)) != len(lower):
        raise FieldError(f"repeated column names in {names}", path=path, fix="give each column its own name")
    axes = [a for a in ("x", "y", "z") if a in lower]
    if axes[:2] != ["x", "y"]:
        raise FieldError(f"no coordinate columns x, y[, z] among {names}", path=path,
                         fix="add a header row such as x,y,z,pressure, or name the columns: --columns x,y,z,p")
    points = np.stack([table[:, lower.index(a)] for a in axes], axis=1)
    normal_names = [f"n{a}" for a in axes]
    normals = None
    if all(n in lower for n in normal_names):
        normals = np.stack([table[:, lower.index(n)] for n in normal_names], axis=1)
    used = set(axes + (normal_names if normals is not None else []))
    fields = join_columns({name: table[:, i] for i, name in enumerate(names) if name.lower() not in used})
    return Geometry(points, point_data=fields, normals=normals, source=path)


def _column_names(columns: str | list[str] | None) -> list[str]:
    """`"x,y,z,p"` or a list -> the list (empty when not given)."""
    if isinstance(columns, str):
        columns = columns.split(",")
    return [c.strip() for c in columns or [] if c.strip()]


def _is_number(token: str) -> bool:
    try:
        float(token.replace(",", "."))
    except ValueError:
        return False
    return True


def read_csv(path: Path, columns: str | list[str] | None = None) -> Geometry:
    """A numeric table, one point per row: comma-, semicolon-, tab- or whitespace-separated (sniffed from the
    first row; `;` files may use decimal commas), `#` comments skipped. With a header row its names are used
    (`x, y[, z]`, optional `nx, ny[, nz]`, one column per scalar field, `v__0, v__1, ...` for vector fields);
    without one the columns are x, y[, z] then `field_0, field_1, ...`. `columns` ("x,y,z,p" or a list) names
    them instead, and replaces a header row."""
    with open(path, encoding="utf-8-sig") as f:  # (line number, text) of the first two rows that are not comments
        found = list(islice(((i, ln.strip()) for i, ln in enumerate(f)
                             if ln.strip() and not ln.lstrip().startswith("#")), 2))
    if not found:
        raise CorruptFileError("no rows", path=path, fix="write one point per row: x,y,z[,fields...]")
    first_line, rows = found[0][0], [text for _, text in found]
    delimiter = next((d for d in (";", "\t", ",") if d in rows[0]), None)
    tokens = [t.strip() for t in (rows[0].split(delimiter) if delimiter else rows[0].split())]
    header = None if all(_is_number(t) for t in tokens) else tokens
    decimal_comma = delimiter == ";" and "," in rows[-1]
    try:
        table = np.loadtxt(path, delimiter=delimiter, skiprows=first_line + 1 if header else 0,
                           comments="#", ndmin=2, encoding="utf-8-sig",
                           converters=(lambda s: float(s.replace(",", "."))) if decimal_comma else None)
    except ValueError as e:
        raise CorruptFileError(f"non-numeric or ragged rows: {e}", path=path,
                               fix="every row needs the same number of numeric values") from e
    names = _column_names(columns) or header or default_columns(table.shape[1])
    return table_geometry(table, names, path)


def write_csv(geometry: Geometry, path: Path) -> None:
    if geometry.cells:
        warnings.warn(f"{path.name}: CSV keeps points, normals and point fields, not cells", stacklevel=2)
    names = ["x", "y", "z"][: geometry.dim]
    columns = list(geometry.points.T)
    if geometry.given_normals is not None:
        names += [f"n{a}" for a in names]
        columns += list(geometry.given_normals.T)
    for name, value in split_columns(dict(geometry.point_data)).items():
        if name.lower() in names:
            raise FieldError(f"point field {name!r} clashes with a coordinate column name", path=path)
        names.append(name)
        columns.append(value.astype(np.float64))
    np.savetxt(path, np.stack(columns, axis=1), delimiter=",", header=",".join(names), comments="",
               fmt=_FLOAT_FORMAT)


def read_xyz(path: Path) -> Geometry:
    try:
        table = np.loadtxt(path, ndmin=2)
    except ValueError as e:
        raise CorruptFileError(f"non-numeric or ragged rows: {e}", path=path) from e
    points, normals = _split_normals(table, path)
    return Geometry(points, normals=normals, source=path)


def write_xyz(geometry: Geometry, path: Path) -> None:
    _warn_dropped(geometry, path)
    table = geometry.points if geometry.given_normals is None else np.hstack([geometry.points, geometry.given_normals])
    np.savetxt(path, table, fmt=_FLOAT_FORMAT)
