"""`geoop data import`: a folder of a solver's VTU/VTK/MSH/XDMF files with point data, or of point clouds with
fields (CSV/TXT/NPY/NPZ/PLY), becomes a geoop dataset, split at random, by a split file, or with a folder of
held-out designs as the test split."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import geoop
from geoop.data.manifest import FORMAT, VERSION, sample_file, write_json_atomic
from geoop.data.splits import DEFAULT_FRACTIONS, choose_splits
from geoop.data.statistics import field_statistics
from geoop.errors import FieldError, GeoopError
from geoop.geometry.geometry import Geometry
from geoop.geometry.transfer import cell_to_point
from geoop.io import load

IMPORTABLE = (".vtu", ".vtk", ".msh", ".xdmf", ".xmf", ".npz", ".ply", ".csv", ".txt", ".tsv", ".npy")
TABLES = (".csv", ".txt", ".tsv", ".npy")  # headerless ones take --columns


def find_files(source: str | Path, extensions: tuple[str, ...] = IMPORTABLE) -> list[Path]:
    """Files with one of `extensions` under `source` (a folder, searched recursively, or one file), sorted."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise GeoopError("no such file or folder", path=source)
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in extensions and p.is_file())
    if not files:
        raise GeoopError(f"no {', '.join(extensions)} files found", path=source)
    return files


def _point_field(g: Geometry, name: str, path: Path, cell_to_points: bool) -> np.ndarray:
    if name in g.point_data:
        return g.point_data[name]
    if name in g.cell_data:
        if cell_to_points:
            return cell_to_point(g, name)
        raise FieldError(f"{name!r} is cell data here, not point data", path=path,
                         fix="pass --cell-to-point to average it onto the points")
    raise FieldError(f"no field {name!r}; point fields: {sorted(g.point_data)}, cell fields: {sorted(g.cell_data)}",
                     path=path, fix="check the spelling, or choose --inputs/--targets among the fields listed")


def _load(path: Path, columns: str | None) -> Geometry:
    return load(path, **({"columns": columns} if columns and path.suffix.lower() in TABLES else {}))


def _aliases(path: Path, root: Path) -> set[str]:
    """The names a sample file answers to in a split file: its name, stem, and path relative to its folder."""
    rel = path.relative_to(root) if root.is_dir() else Path(path.name)
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
                  cell_to_points: bool = False, seed: int = 0, progress: bool = True,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, split_file: str | Path | None = None,
                  test_from: str | Path | None = None, masks: dict[str, str] | None = None,
                  columns: str | None = None) -> dict:
    """Convert every simulation file under `source` into a sample of a new dataset in `out`; returns the
    manifest. All files must carry the chosen fields with the same number of components.

    Splits: at random by `fractions` (train, val, test) and `seed`; by `split_file` (JSON naming the files
    of each split, see `choose_splits`); or every file under `test_from` (a folder, outside `source` or
    inside it) is the test split and the rest are split by `fractions`. `masks` {field: mask field}: the
    field applies only where the 0/1 point field is 1 (boundary data, e.g. {"g": "dirichlet"}). `columns`
    names the columns of headerless tables (CSV/TXT/NPY point clouds), e.g. "x,y,z,p"."""
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
    first = _load(files[0], columns)
    for name in inputs + targets:  # a misspelt field fails before anything is written
        _point_field(first, name, files[0], cell_to_points)
    for field, mask in masks.items():
        _check_mask(first, field, mask, files[0])
    (root / "samples").mkdir(parents=True, exist_ok=True)
    components: dict[str, int] = {}
    dims: set[int] = set()
    records = []
    for index, path in enumerate(tqdm(files, desc="import", unit="file", disable=not progress)):
        t0 = time.perf_counter()
        g = _load(path, columns)
        fields = {}
        for name in inputs + targets:
            value = np.asarray(_point_field(g, name, path, cell_to_points), dtype=np.float64)
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
                        "seconds": time.perf_counter() - t0, "source_file": str(path)})
    if len(dims) > 1:
        raise GeoopError(f"the files mix {sorted(dims)}D geometries", path=source)
    spec = lambda name: {"components": components[name], "units": "as in the source files",  # noqa: E731
                         "description": f"imported field {name}", "mask": masks.get(name)}
    manifest = {"format": FORMAT, "version": VERSION, "family": "imported",
                "description": f"imported from {source.resolve()}", "dim": dims.pop(), "seed": seed,
                "options": {"cell_to_points": cell_to_points, "fractions": list(fractions),
                            "split_file": None if split_file is None else str(split_file),
                            "test_from": None if test_from is None else str(test_from), "masks": masks},
                "solver": "external", "versions": {"geoop": geoop.__version__},
                "fields": {"inputs": {n: spec(n) for n in inputs}, "targets": {n: spec(n) for n in targets}},
                "samples": records, "failures": [], "status": "complete",
                "splits": splits}
    files_by_id = {r["index"]: r["file"] for r in records}
    manifest["statistics"] = field_statistics(root, [files_by_id[i] for i in manifest["splits"]["train"]],
                                              manifest["fields"])
    write_json_atomic(root / "manifest.json", manifest)
    return manifest
