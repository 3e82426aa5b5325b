"""Dataset generation: one forked process per sample (gmsh may hang or crash), at most `workers` at once, a
progress bar with ETA, atomic sample files, and a manifest rewritten after every sample, so an interrupted run
keeps every finished sample and the same command resumes where it stopped."""
from __future__ import annotations

import logging
import multiprocessing as mp
import platform
import time
import traceback
from collections.abc import Collection
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

import geoop
from geoop.data.families import Family, get_family
from geoop.data.manifest import MANIFEST, Manifest, read_manifest, sample_file
from geoop.data.splits import make_splits
from geoop.data.statistics import field_statistics
from geoop.errors import CorruptFileError, GeoopError

log = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    out = {"geoop": geoop.__version__, "python": platform.python_version()}
    for pkg in ("numpy", "scipy", "scikit-fem", "gmsh", "pyamg", "meshio"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            pass
    return out


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def _scalars(global_data: dict[str, np.ndarray]) -> dict[str, float]:
    return {k: float(v) for k, v in global_data.items() if np.asarray(v).size == 1 and
            np.issubdtype(np.asarray(v).dtype, np.number)}


def require_solvers(family: Family) -> None:
    """Fail early, with the install command, when the optional solver stack is missing."""
    from importlib.util import find_spec

    missing = [m for m in family.requires if find_spec(m) is None]
    if missing:
        raise GeoopError(f"the {family.name} generator needs {', '.join(missing)}",
                         fix="pip install 'geoop[data]' (gmsh is GPL, so it is not part of the core install)"
                             + (" and 'geoop[vtk]'" if "vtk" in missing else ""))
    if family.openfoam:
        from geoop.data.openfoam import openfoam_bashrc

        openfoam_bashrc()


def _preload_solvers() -> None:
    """Import the solver stack once here, so that every forked sample process starts with it loaded."""
    for module in ("gmsh", "skfem", "skfem.models.elasticity", "skfem.models.poisson", "pyamg", "meshio"):
        try:
            __import__(module)
        except ImportError:
            pass


def make_and_save(family: str | Family, root: str | Path, seed: int, index: int, options: dict) -> dict[str, Any]:
    """Make sample `index` of `family` (a registered name, or the family itself), check its fields are finite
    and write it (atomically); returns its manifest record {index, file, n_points, seconds, values}."""
    t0 = time.perf_counter()
    sample = (get_family(family) if isinstance(family, str) else family).sample(seed, index, **options)
    for name, value in sample.point_data.items():
        if np.issubdtype(value.dtype, np.floating) and not np.isfinite(value).all():
            raise GeoopError(f"the solver produced non-finite values in field {name!r}")
    sample.save(Path(root) / sample_file(index))
    return {"index": index, "file": sample_file(index), "n_points": sample.n_points,
            "seconds": time.perf_counter() - t0, "values": _scalars(sample.global_data)}


def failure_reason(error: BaseException) -> str:
    """One line saying why a sample failed: a geoop error's message, else the exception's last line."""
    if isinstance(error, GeoopError):
        return str(error).splitlines()[0]
    return traceback.format_exc(limit=2).strip().splitlines()[-1]


def _one(family_name: str, root: str, seed: int, index: int, options: dict, conn) -> None:
    """Child process: make, check and write one sample; report a record or the error."""
    try:
        conn.send(make_and_save(family_name, root, seed, index, options))
    except BaseException as e:  # everything goes back to the parent as a failure record
        conn.send({"index": index, "error": failure_reason(e)})
    finally:
        conn.close()


def _field_specs(family: Family) -> dict[str, Any]:
    spec = lambda f: {"components": f.components, "units": f.units, "description": f.description,  # noqa: E731
                      "mask": f.mask}
    return {"inputs": {k: spec(v) for k, v in family.inputs.items()},
            "targets": {k: spec(v) for k, v in family.targets.items()}}


def records_from_files(root: Path, skip: Collection[int] = ()) -> dict[int, dict]:
    """Sample records recovered from `samples/sample_NNNNNN.npz` files (their parameters read back from the
    files; timings unknown: 0), except those of indices in `skip`."""
    from geoop.io import load

    records = {}
    for path in sorted((root / "samples").glob("sample_*.npz")):
        index = int(path.stem.split("_")[1])
        if index in skip:
            continue
        sample = load(path)
        records[index] = {"index": index, "file": sample_file(index), "n_points": sample.n_points, "seconds": 0.0,
                          "values": _scalars(sample.global_data)}
    return records


def check_same(manifest: Manifest, family: Family, seed: int, options: dict, root: Path) -> None:
    """Refuse to resume a folder made with other settings. An option the folder does not record (made before
    the family had it) counts as the family's default."""
    wanted = {"family": family.name, "seed": seed, "options": _json_safe(options)}
    have = {k: getattr(manifest, k) for k in wanted}
    if isinstance(have["options"], dict):
        have["options"] = {**_json_safe(family.options), **have["options"]}
    if have != wanted:
        raise GeoopError(f"this folder holds a different dataset ({have}); not touching it", path=root,
                         fix=f"choose another --out, or resume with the same settings {wanted}")


def generate(family_name: str, out: str | Path, n: int | None = None, seed: int = 0, workers: int = 1,
             timeout: float = 600.0, progress: bool = True, splits: tuple[float, float, float] | None = None,
             keep_unconverged: bool = False, **options: Any) -> Manifest:
    """Make (or finish) a dataset of `n` samples of family `family_name` in `out`; returns the manifest.

    Sample i is made from seed `(seed, i)`, so results do not depend on `workers` or on interruptions.
    A sample whose meshing or solve fails or exceeds `timeout` seconds is recorded under `failures` and
    replaced by the next index. `splits`: train/val/test fractions (default: the family's). A sample whose
    solver did not converge (its `converged` value is 0) is kept but left out of the splits (listed under
    `unconverged`) unless `keep_unconverged`."""
    family = get_family(family_name)
    require_solvers(family)
    _preload_solvers()
    n = n or family.default_n
    workers = max(1, min(workers, 2, n))
    root = Path(out)
    (root / "samples").mkdir(parents=True, exist_ok=True)
    options = {**family.options, **options}
    records: dict[int, dict] = {}
    failures: dict[int, str] = {}
    if (root / MANIFEST).exists():
        try:
            old = read_manifest(root)
        except CorruptFileError as e:  # rebuild the sample list from the (atomically written) files
            log.warning("%s; rebuilding it from the sample files", str(e).splitlines()[0])
            records = records_from_files(root)
        else:
            check_same(old, family, seed, options, root)
            records = {r["index"]: r for r in old.samples if (root / r["file"]).is_file()}
            failures = {f["index"]: f["reason"] for f in old.failures}
    manifest = new_manifest(family, seed, options, n)

    def save_manifest() -> None:
        manifest.samples = [records[i] for i in sorted(records)]
        manifest.failures = [{"index": i, "reason": r} for i, r in sorted(failures.items())]
        manifest.write(root)

    ctx = mp.get_context("fork")
    running: dict[int, tuple[Any, Any, float]] = {}
    next_index = 0
    bar = tqdm(total=n, initial=min(len(records), n), desc=f"{family.name}", unit="sample", disable=not progress)
    try:
        while len(records) < n or running:
            while len(running) < workers and len(records) + len(running) < n:
                while next_index in records or next_index in failures:
                    next_index += 1
                parent, child = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_one, args=(family.name, str(root), seed, next_index, options, child))
                proc.start()
                child.close()
                running[next_index] = (proc, parent, time.monotonic())
                next_index += 1
                if len(failures) > n + 10:
                    raise GeoopError(f"too many failed samples ({len(failures)}); reasons are in the manifest",
                                     path=root)
            for index, (proc, conn, started) in list(running.items()):
                result = None
                if conn.poll(0.05):
                    try:
                        result = conn.recv()
                    except EOFError:
                        result = {"index": index, "error": f"the process died (exit code {proc.exitcode})"}
                elif not proc.is_alive():
                    result = {"index": index, "error": f"the process died (exit code {proc.exitcode})"}
                elif time.monotonic() - started > timeout:
                    proc.kill()
                    result = {"index": index, "error": f"timed out after {timeout:.0f} s"}
                if result is None:
                    continue
                proc.join()
                del running[index]
                if "error" in result:
                    failures[index] = result["error"]
                    bar.write(f"sample {index} skipped: {result['error']}")
                    if not records and len(failures) >= 10:
                        save_manifest()
                        raise GeoopError(f"the first {len(failures)} samples all failed, e.g.: {result['error']}",
                                         path=root, fix="check the family options; failures are in the manifest")
                else:
                    records[index] = result
                    bar.update(1)
                save_manifest()
    finally:
        for proc, _, _ in running.values():
            proc.kill()
            proc.join()
        bar.close()
    kept = sorted(records)[:n]
    records = {i: records[i] for i in kept}
    unconverged = [i for i in kept if records[i]["values"].get("converged", 1.0) == 0.0]
    manifest.unconverged = unconverged
    manifest.splits = make_splits(kept if keep_unconverged else sorted(set(kept) - set(unconverged)), seed,
                                  splits or family.splits)
    manifest.samples = [records[i] for i in sorted(records)]
    complete(manifest, root)
    save_manifest()
    return manifest


def new_manifest(family: Family, seed: int, options: dict[str, Any], n: int | None) -> Manifest:
    """The manifest of a dataset of `family` still being made (no samples yet, status "incomplete")."""
    return Manifest(family.name, family.dim, _field_specs(family), status="incomplete",
                    description=family.description, seed=seed, options=_json_safe(options), n_requested=n,
                    solver=family.solver, versions=_versions(),
                    forces=None if family.forces is None else family.forces.to_dict(), body=family.body)


def complete(manifest: Manifest, root: Path) -> None:
    """Mark a made dataset complete: the field statistics over its training split, seconds and points per
    sample (`manifest.samples` and `manifest.splits` are final)."""
    files = manifest.files
    manifest.statistics = field_statistics(root, [files[i] for i in manifest.splits["train"]], manifest.fields)
    seconds = [r["seconds"] for r in manifest.samples]
    manifest.seconds_per_sample = {"mean": float(np.mean(seconds)), "max": float(np.max(seconds))}
    manifest.points_per_sample = {"min": min(r["n_points"] for r in manifest.samples),
                                  "max": max(r["n_points"] for r in manifest.samples)}
    manifest.status = "complete"


def verify_samples(root: str | Path) -> None:
    """Open every sample file of a dataset; raises naming the first missing or unreadable one."""
    manifest = read_manifest(root)
    for record in manifest.samples:
        path = Path(root) / record["file"]
        try:
            with np.load(path) as z:
                z.files  # noqa: B018 - reads the zip directory
        except Exception as e:
            raise CorruptFileError(f"unreadable sample ({e})", path=path,
                                   fix="delete it and rerun the same `geoop data make` command to remake it") from e
