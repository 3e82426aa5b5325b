"""`geoop data import`: a folder of a solver's VTU/VTK/MSH/XDMF files with point data, or of point clouds with
fields (CSV/TXT/NPY/NPZ/PLY), becomes a geoop dataset, split at random, by a split file, or with a folder of
held-out designs as the test split."""
from __future__ import annotations

import json
import os
from time import perf_counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

import geoop
from geoop.data.manifest import Manifest, sample_file
from geoop.data.read_options import AS_IS, ReadOptions
from geoop.data.splits import DEFAULT_FRACTIONS, choose_splits
from geoop.data.statistics import field_statistics
from geoop.errors import FieldError, GeoopError
from geoop.geometry.geometry import Geometry
from geoop.geometry.transfer import cell_to_point, cells_as_points
from geoop.io import FORMATS, extensions, load, reader_options
from geoop.io.registry import WITH_FIELDS

def importable() -> tuple[str, ...]:
    """The files a dataset can be imported from: every registered format whose kind carries fields (case
    folders are found by their system/controlDict)."""
    return tuple(e for e in extensions(WITH_FIELDS) if FORMATS[e].kind != "case")


def is_case(folder: Path) -> bool:
    """An OpenFOAM case folder (it holds system/controlDict)."""
    return (folder / "system" / "controlDict").is_file()


def find_files(source: str | Path, suffixes: tuple[str, ...] | None = None) -> list[Path]:
    """Samples under `source` (a folder, searched recursively, or one file or case): files with one of
    `suffixes` (default: every `importable` format), and OpenFOAM case folders (whose own files, such as
    foamToVTK output, are not samples again); sorted. Symbolic links to files and folders are followed (a
    folder reached twice is searched once, so link loops end)."""
    source = Path(source)
    if source.is_file() or (source.is_dir() and is_case(source)):
        return [source]
    if not source.is_dir():
        raise GeoopError("no such file or folder", path=source)
    found = list(walk(source))
    cases = sorted({p.parent.parent for p in found if p.name == "controlDict" and p.parent.name == "system"}) \
        if suffixes is None else []
    suffixes = importable() if suffixes is None else suffixes
    inside = lambda p: any(c in p.parents for c in cases)  # noqa: E731
    files = sorted([p for p in found if p.suffix.lower() in suffixes and p.is_file() and not inside(p)] + cases)
    if not files:
        raise GeoopError(f"no {', '.join(suffixes)} files or OpenFOAM cases found", path=source)
    return files


def walk(folder: Path):
    """Every file under `folder`, following symbolic links to files and folders; each real folder is entered
    once (a link back up the tree is not followed again)."""
    seen: set[str] = set()
    for top, folders, names in os.walk(folder, followlinks=True):
        real = os.path.realpath(top)
        if real in seen:
            folders[:] = []
            continue
        seen.add(real)
        folders.sort()
        for name in sorted(names):
            yield Path(top) / name


def parameters(path: Path, table: dict[str, dict[str, float]] | None = None) -> dict[str, float]:
    """A sample's scalar parameters: its row of `table` (by case or file name or stem), else `params.json`
    in its case folder, else `<stem>.json` or `params.json` beside the file; {} if none."""
    if table is not None:
        for key in (path.name, path.stem):
            if key in table:
                return table[key]
        raise GeoopError(f"the parameter table has no row for {path.name!r}", path=path,
                         fix="add a row for every case (first column: the case or file name)")
    candidates = [path / "params.json"] if path.is_dir() else [path.with_suffix(".json"),
                                                                path.parent / "params.json"]
    for c in candidates:
        if c.is_file():
            try:
                values = json.loads(c.read_text())
            except json.JSONDecodeError as e:
                raise GeoopError(f"not valid JSON: {e}", path=c, fix='write {"U_inf": 20.0, ...}') from e
            if not isinstance(values, dict) or not all(isinstance(v, (int, float)) for v in values.values()):
                raise GeoopError("parameters must map names to numbers", path=c, fix='write {"U_inf": 20.0}')
            return {k: float(v) for k, v in values.items()}
    return {}


def read_parameter_table(path: str | Path) -> dict[str, dict[str, float]]:
    """A CSV table: a header `name,param1,param2,...`, then one row per case (or file) name."""
    path = Path(path)
    import csv

    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2 or len(rows[0]) < 2:
        raise GeoopError("a parameter table needs a header (name, then parameter names) and a row per case",
                         path=path, fix="e.g. name,U_inf\\ncase1,20\\ncase2,25")
    try:
        return {r[0].strip(): {k.strip(): float(v) for k, v in zip(rows[0][1:], r[1:], strict=True)}
                for r in rows[1:] if r}
    except ValueError as e:
        raise GeoopError(f"non-numeric or ragged row: {e}", path=path) from e


def pressure_coefficient(g: Geometry, spec: tuple[str, str, str, str], params: dict[str, float], path: Path,
                         cell_to_points: bool) -> np.ndarray:
    """Cp = (p - p_inf) / (rho U_inf^2 / 2) of the field `spec[0]`; rho, U_inf and p_inf (`spec[1:]`) are numbers
    or names of the sample's parameters. (OpenFOAM's incompressible solvers write p / rho: use rho = 1.)"""
    def number(token: str) -> float:
        try:
            return float(token)
        except ValueError:
            if token in params:
                return params[token]
            raise GeoopError(f"--cp: {token!r} is neither a number nor a parameter of this case "
                             f"(parameters: {sorted(params)})", path=path,
                             fix="give numbers, e.g. --cp p,1,20,0, or add it to params.json") from None

    rho, speed, p_inf = (number(t) for t in spec[1:])
    if rho <= 0 or speed == 0:
        raise GeoopError(f"--cp needs rho > 0 and U_inf != 0 (got {rho}, {speed})", path=path)
    p = np.asarray(source_field(g, spec[0], path, cell_to_points), dtype=np.float64)
    return (p - p_inf) / (0.5 * rho * speed**2)


def source_field(g: Geometry, name: str, path: Path, cell_to_points: bool) -> np.ndarray:
    """Field `name` of a read file at its points: a point field, or a cell field carried to the points
    (`cell_to_points`); a typed error naming the fields there are otherwise."""
    if name in g.point_data:
        return g.point_data[name]
    if name in g.cell_data:
        if cell_to_points:
            return cell_to_point(g, name)
        raise FieldError(f"{name!r} is cell data here, not point data", path=path,
                         fix="pass --cell-to-point to average it onto the points")
    raise FieldError(f"no field {name!r}; point fields: {sorted(g.point_data)}, cell fields: {sorted(g.cell_data)}",
                     path=path, fix="check the spelling, or choose --inputs/--targets among the fields listed")


def load_source(path: Path, read: ReadOptions = AS_IS, sort: bool = True) -> Geometry:
    """A sample's file or case, with the reader options of `read` that its format takes (`columns` for
    tables, `blocks` for multiblocks, `patches`/`time` for OpenFOAM cases: see `geoop.io.FORMATS`). `sort`:
    points in Z-order (False: the file's order)."""
    options = reader_options(path, columns=read.columns or None, blocks=read.blocks or None, patches=read.patches,
                             time=read.time)
    return load(path, sort=sort, **options)


def as_sample(g: Geometry, path: Path, read: ReadOptions = AS_IS,
              params: dict[str, float] | None = None) -> Geometry:
    """What import (and prediction) make of a loaded source `g`: its cells as points (`read.at == "cells"`),
    Cp from a pressure field (`read.cp`: field, rho, U_inf, p_inf), and its scalar `params` as constant point
    fields."""
    if read.at == "cells":
        g = cells_as_points(g)
    if read.cp is not None:
        g = g.with_point_data(cp=pressure_coefficient(g, read.cp, params or {}, path, read.cell_to_points))
    if params:
        g = g.with_point_data(**{k: np.full(g.n_points, v) for k, v in params.items()})
    return g


def read_sample(path: Path, read: ReadOptions = AS_IS, params: dict[str, float] | None = None,
                sort: bool = True) -> Geometry:
    """One sample as import reads it: `load_source`, then `as_sample`."""
    return as_sample(load_source(path, read, sort), path, read, params)


def _aliases(path: Path, root: Path) -> set[str]:
    """The names a sample file answers to in a split file: its name, stem, and path relative to its folder."""
    rel = path.relative_to(root) if root.is_dir() and path != root else Path(path.name)  # one case: its name
    return {path.name, path.stem, rel.as_posix(), rel.with_suffix("").as_posix()}


def _check_mask(g: Geometry, field: str, mask: str, path: Path) -> np.ndarray:
    if mask not in g.point_data:
        raise FieldError(f"no point field {mask!r} to mask {field!r} with; point fields: {sorted(g.point_data)}",
                         path=path, fix="name a 0/1 point field that marks where the field applies")
    m = np.asarray(g.point_data[mask]).reshape(-1)
    if not np.isin(m, (0, 1)).all():
        raise FieldError(f"mask {mask!r} of {field!r} holds values other than 0 and 1", path=path,
                         fix="a mask marks with 1 the points where the field applies (boundary nodes)")
    return m.astype(np.float64)


def import_folder(source: str | Path, out: str | Path, inputs: list[str], targets: list[str],
                  read: ReadOptions = AS_IS, seed: int = 0, progress: bool = True,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, split_file: str | Path | None = None,
                  test_from: str | Path | None = None, masks: dict[str, str] | None = None,
                  params_table: str | Path | None = None) -> Manifest:
    """Convert every simulation file under `source` into a sample of a new dataset in `out`; returns the
    manifest. All files must carry the chosen fields with the same number of components.

    Splits: at random by `fractions` (train, val, test) and `seed`; by `split_file` (JSON naming the files
    of each split, see `choose_splits`); or every file under `test_from` (a folder, outside `source` or
    inside it) is the test split and the rest are split by `fractions`. `masks` {field: mask field}: the
    field applies only where the 0/1 point field is 1 (boundary data, e.g. {"g": "dirichlet"}). `read`: how
    each file is read (`ReadOptions`: table columns, OpenFOAM patches and time, VTM blocks, cells as points,
    Cp from a pressure field); the dataset records it, so prediction reads a new case the same way. Each
    sample's scalar parameters (`params.json` in its case folder or beside its file, or
    the rows of the CSV `params_table`) become constant input fields."""
    if not targets:
        raise GeoopError("at least one target field is needed", fix="pass --targets NAME[,NAME...]")
    masks = dict(masks or {})
    for field in masks:
        if field not in inputs + targets:
            raise GeoopError(f"--mask names {field!r}, which is not an input or target",
                             fix=f"mask one of {inputs + targets}, e.g. --mask g=dirichlet")
    source = Path(source)
    held_out = find_files(test_from) if test_from is not None else []
    files = [f for f in find_files(source) if f not in set(held_out)] + held_out
    root = Path(out)
    if (root / "manifest.json").exists():
        raise GeoopError("a dataset already exists here; not overwriting it", path=root,
                         fix="choose a new --out folder")
    held = set(held_out)
    aliases = {i: _aliases(f, Path(test_from) if f in held else source) for i, f in enumerate(files)}
    splits = choose_splits(aliases, seed, fractions, split_file, [i for i, f in enumerate(files) if f in held])
    table = read_parameter_table(params_table) if params_table is not None else None
    params = {f: parameters(f, table) for f in files}
    keys = sorted(params[files[0]])
    for f, values in params.items():
        if sorted(values) != keys:
            raise GeoopError(f"parameters {sorted(values)} differ from {keys} of {files[0].name}", path=f,
                             fix="give every case the same parameter names")
    inputs = list(inputs) + [k for k in keys if k not in inputs]
    first = read_sample(files[0], read, params[files[0]])
    for name in inputs + targets:  # a misspelt field fails before anything is written
        source_field(first, name, files[0], read.cell_to_points)
    for field, mask in masks.items():
        _check_mask(first, field, mask, files[0])
    (root / "samples").mkdir(parents=True, exist_ok=True)
    components: dict[str, int] = {}
    dims: set[int] = set()
    records = []
    for index, path in enumerate(tqdm(files, desc="import", unit="file", disable=not progress)):
        t0 = perf_counter()
        g = read_sample(path, read, params[path])
        fields = {}
        for name in inputs + targets:
            value = np.asarray(source_field(g, name, path, read.cell_to_points), dtype=np.float64)
            c = int(np.prod(value.shape[1:])) if value.ndim > 1 else 1
            if components.setdefault(name, c) != c:
                raise FieldError(f"field {name!r} has {c} components here but {components[name]} in "
                                 f"{files[0].name}", path=path, fix="import files of one kind at a time")
            if not np.isfinite(value).all():
                raise FieldError(f"field {name!r} has NaN/inf values", path=path)
            fields[name] = value.reshape(g.n_points, -1) if c > 1 else value.reshape(-1)
        fields.update({mask: _check_mask(g, field, mask, path) for field, mask in masks.items()})
        dims.add(g.dim)
        sample = Geometry(g.points, g.cells, fields, normals=g.given_normals, source=path)
        sample.save(root / sample_file(index))
        records.append({"index": index, "file": sample_file(index), "n_points": g.n_points,
                        "seconds": perf_counter() - t0, "source_file": str(path)})
    if len(dims) > 1:
        raise GeoopError(f"the files mix {sorted(dims)}D geometries", path=source)
    spec = lambda name: {"components": components[name], "units": "as in the source files",  # noqa: E731
                         "description": f"imported field {name}", "mask": masks.get(name)}
    fields = {"inputs": {n: spec(n) for n in inputs}, "targets": {n: spec(n) for n in targets}}
    files_by_id = {r["index"]: r["file"] for r in records}
    manifest = Manifest("imported", dims.pop(), fields, records, splits,
                        description=f"imported from {source.resolve()}", seed=seed,
                        options={**read.to_dict(), "fractions": list(fractions), "parameters": keys,
                                 "split_file": None if split_file is None else str(split_file),
                                 "test_from": None if test_from is None else str(test_from), "masks": masks},
                        solver="external", versions={"geoop": geoop.__version__},
                        statistics=field_statistics(root, [files_by_id[i] for i in splits["train"]], fields))
    manifest.write(root)
    return manifest
