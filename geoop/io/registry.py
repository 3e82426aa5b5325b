"""Extension -> reader/writer table, with the checks and error wrapping every format shares.

A new format is one reader and/or writer function plus one `register` call."""
from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from geoop.errors import CorruptFileError, GeoopError, MissingFileError, UnsupportedFormatError
from geoop.geometry.geometry import Geometry
from geoop.geometry.ordering import morton_order

Reader = Callable[..., Geometry]
Writer = Callable[..., None]


#: what a format holds: a mesh with point and cell fields, a bare surface or bare points (no fields), a point
#: cloud with fields, blocks of meshes, or a solver's case (a folder)
KINDS = ("mesh", "surface", "points", "cloud", "multiblock", "case")
#: the kinds a dataset can be imported from (they carry fields)
WITH_FIELDS = ("mesh", "cloud", "multiblock", "case")


@dataclass(frozen=True)
class Format:
    """A file format: its reader and/or writer, what it holds (for messages and docs), its kind (see `KINDS`)
    and the keyword options its reader takes beyond the path (e.g. `columns` of a table)."""

    name: str
    reader: Reader | None
    writer: Writer | None
    holds: str
    kind: str = "mesh"
    options: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {}


def register(extensions: list[str], name: str, reader: Reader | None, writer: Writer | None, holds: str,
             kind: str = "mesh", options: tuple[str, ...] = ()) -> None:
    """Add a format for `extensions` (".ext", lower case): a reader `(path, **options) -> Geometry` and/or a
    writer `(geometry, path, **options) -> None`, its `kind` (see `KINDS`) and the reader's `options`.
    `geoop.load`/`save`, `geoop data import` and the command line's help then know it."""
    if kind not in KINDS:
        raise ValueError(f"unknown format kind {kind!r}; choose from {KINDS}")
    for ext in extensions:
        FORMATS[ext] = Format(name, reader, writer, holds, kind, tuple(options))


def extensions(kinds: tuple[str, ...] = KINDS, readable: bool = True) -> tuple[str, ...]:
    """The registered extensions of formats of `kinds` (that geoop can read, with `readable`), sorted."""
    return tuple(sorted(e for e, f in FORMATS.items() if f.kind in kinds and (f.reader is not None or not readable)))


def reader_options(path: Path, **given: Any) -> dict[str, Any]:
    """Of the `given` reader options (None: not given), those the format of `path` takes (a folder is a case)."""
    fmt = FORMATS.get(".foam") if Path(path).is_dir() else FORMATS.get(_extension(Path(path)))
    takes = fmt.options if fmt is not None else ()
    return {k: v for k, v in given.items() if v is not None and k in takes}


def _extension(path: Path) -> str:
    return "".join(path.suffixes[-1:]).lower()


def _format(path: Path, mode: str) -> Format:
    ext = _extension(path)
    fmt = FORMATS.get(ext)
    if fmt is None or getattr(fmt, mode) is None:
        able = sorted(e for e, f in FORMATS.items() if getattr(f, mode) is not None)
        verb = "read" if mode == "reader" else "write"
        raise UnsupportedFormatError(f"geoop cannot {verb} {ext or 'files without an extension'!r}",
                                     path=path, fix=f"use one of {', '.join(able)}")
    return fmt


def load(path: str | Path, sort: bool = True, **options: Any) -> Geometry:
    """Read a surface, volume mesh or point cloud into a `Geometry`.

    Args:
        path: STL/OBJ/OFF/GLB/GLTF (surfaces), VTU/VTK/MSH/XDMF (meshes with fields), PLY (mesh or points),
            NPY/NPZ/CSV/TXT/XYZ (point clouds); with the vtk extra VTP, VTM and OpenFOAM cases (a case folder
            or its `.foam` file).
        sort: reorder points along a Z-order curve (cells and fields follow; `source_index` maps back).
        options: format-specific, e.g. `points_key="pos"` for NPZ, `columns="x,y,z,p"` for tables,
            `blocks="wing*"` for VTM, `patches="motorBike*"` and `time=500` for OpenFOAM.
    """
    path = Path(path)
    if path.is_dir() and (path / "system" / "controlDict").is_file():  # an OpenFOAM case folder
        path = path / f"{path.name}.foam"  # the reader needs only the folder; the marker need not exist
        fmt = FORMATS[".foam"]
        return _read(fmt, path, sort, options)
    if not path.is_file():
        raise MissingFileError("no such file" if not path.exists() else "not a file", path=path,
                               fix="check the path (relative paths start from the current directory)")
    return _read(_format(path, "reader"), path, sort, options)


def _read(fmt: Format, path: Path, sort: bool, options: dict[str, Any]) -> Geometry:
    try:
        geometry = fmt.reader(path, **options)
    except GeoopError as e:
        if e.path is None:
            raise type(e)(str(e), path=path) from e
        raise
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise GeoopError(f"option not understood by the {fmt.name} reader: {e}", path=path) from e
        raise CorruptFileError(f"cannot read as {fmt.name}: {e}", path=path) from e
    except (Exception, SystemExit) as e:  # parsers raise anything on corrupt input; meshio even exits
        raise CorruptFileError(f"cannot read as {fmt.name}: {type(e).__name__}: {e}", path=path,
                               fix=f"check that the file is a complete, valid {fmt.name} file") from e
    return geometry.permuted(morton_order(geometry.points)) if sort else geometry


def save(geometry: Geometry, path: str | Path, **options: Any) -> Path:
    """Write `geometry` to `path` atomically (a temporary file in the same folder, then a rename), so an
    interrupted write never leaves a half-written file in place of an existing one."""
    path = Path(path)
    fmt = _format(path, "writer")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=".geoop-", dir=path.parent))
    tmp = tmp_dir / path.name  # the real name, so writers' messages name the user's file
    try:
        fmt.writer(geometry, tmp, **options)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return path
