"""`geoop data import`: a folder of a solver's VTU/VTK/MSH/XDMF files with point data becomes a geoop dataset."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

import geoop
from geoop.data.manifest import FORMAT, VERSION, sample_file, write_json_atomic
from geoop.data.statistics import field_statistics, make_splits
from geoop.errors import FieldError, GeoopError
from geoop.geometry.geometry import Geometry
from geoop.geometry.transfer import cell_to_point
from geoop.io import load

IMPORTABLE = (".vtu", ".vtk", ".msh", ".xdmf", ".xmf", ".npz", ".ply")


def find_files(source: str | Path) -> list[Path]:
    """Readable simulation files under `source` (a folder, searched recursively, or one file), sorted."""
    source = Path(source)
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise GeoopError("no such file or folder", path=source)
    files = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMPORTABLE and p.is_file())
    if not files:
        raise GeoopError(f"no {', '.join(IMPORTABLE)} files found", path=source)
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


def import_folder(source: str | Path, out: str | Path, inputs: list[str], targets: list[str],
                  cell_to_points: bool = False, seed: int = 0, progress: bool = True,
                  splits: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> dict:
    """Convert every simulation file under `source` into a sample of a new dataset in `out`; returns the
    manifest. All files must carry the chosen fields with the same number of components."""
    if not targets:
        raise GeoopError("at least one target field is needed", fix="pass --targets NAME[,NAME...]")
    files = find_files(source)
    root = Path(out)
    if (root / "manifest.json").exists():
        raise GeoopError("a dataset already exists here; not overwriting it", path=root,
                         fix="choose a new --out folder")
    first = load(files[0])
    for name in inputs + targets:  # a misspelt field fails before anything is written
        _point_field(first, name, files[0], cell_to_points)
    (root / "samples").mkdir(parents=True, exist_ok=True)
    components: dict[str, int] = {}
    dims: set[int] = set()
    records = []
    for index, path in enumerate(tqdm(files, desc="import", unit="file", disable=not progress)):
        t0 = time.perf_counter()
        g = load(path)
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
        dims.add(g.dim)
        sample = Geometry(g.points, g.cells, fields, source=path)
        sample.save(root / sample_file(index))
        records.append({"index": index, "file": sample_file(index), "n_points": g.n_points,
                        "seconds": time.perf_counter() - t0, "source_file": str(path)})
    if len(dims) > 1:
        raise GeoopError(f"the files mix {sorted(dims)}D geometries", path=source)
    spec = lambda name: {"components": components[name], "units": "as in the source files",  # noqa: E731
                         "description": f"imported field {name}", "mask": None}
    manifest = {"format": FORMAT, "version": VERSION, "family": "imported",
                "description": f"imported from {Path(source).resolve()}", "dim": dims.pop(), "seed": seed,
                "options": {"cell_to_points": cell_to_points}, "solver": "external",
                "versions": {"geoop": geoop.__version__},
                "fields": {"inputs": {n: spec(n) for n in inputs}, "targets": {n: spec(n) for n in targets}},
                "samples": records, "failures": [], "status": "complete",
                "splits": make_splits([r["index"] for r in records], seed, splits)}
    files_by_id = {r["index"]: r["file"] for r in records}
    manifest["statistics"] = field_statistics(root, [files_by_id[i] for i in manifest["splits"]["train"]],
                                              manifest["fields"])
    write_json_atomic(root / "manifest.json", manifest)
    return manifest
