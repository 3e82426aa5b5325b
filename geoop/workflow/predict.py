"""`geoop predict`: a trained model applied to a geometry file, at its own points or at a query file's,
written as VTU (for ParaView) or any writable format, in the order of the input file, with a PNG."""
from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from geoop.errors import GeoopError
from geoop.geometry.geometry import Geometry
from geoop.geometry.sampling import box_grid, sample_surface, sample_volume
from geoop.geometry.transfer import cell_fields
from geoop.data.importer import as_sample, load_source, parameters
from geoop.data.read_options import AS_IS, ReadOptions
from geoop.io import load
from geoop.metrics.forces import ForceCoefficients, ForceSpec
from geoop.training.run import load_model
from geoop.trust.levels import CONFIDENCE, NOVELTY_LEVEL
from geoop.trust.record import TrustReport
from geoop.viz.plot import plot_body_views, plot_fields, plot_surface_profile


class Stopwatch:
    """Wall seconds per named stage: `lap(name)` books the time since the previous lap (or the start)."""

    def __init__(self):
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def generated_queries(geometry: Geometry, grid: str | None = None, random: int | None = None,
                      surface: int | None = None, seed: int = 0) -> Geometry | None:
    """Query points made for `geometry`: a box grid `grid` ("NXxNYxNZ", see `box_grid`), `random` points
    uniform inside it, or `surface` points uniform on its boundary (the last two carry the geometry's point
    fields interpolated, so a truth there is compared); None when none is asked for."""
    asked = [a for a in (grid, random, surface) if a]
    if len(asked) > 1:
        raise GeoopError("ask for one kind of generated queries (--query-grid, --query-random or --query-surface)")
    if grid:
        return box_grid(geometry, grid_shape(grid))
    if random:
        return sample_volume(geometry, random, seed=seed)
    if surface:
        return sample_surface(geometry, surface, seed=seed)
    return None


def grid_shape(grid: str) -> tuple[int, ...]:
    """"64x64x32" -> (64, 64, 32): the node counts of a `--query-grid`."""
    try:
        return tuple(int(v) for v in grid.lower().split("x"))
    except ValueError as e:
        raise GeoopError(f"--query-grid {grid!r} is not NXxNY[xNZ]", fix="e.g. --query-grid 64x64x32") from e


class FilePrediction(NamedTuple):
    """What `predict_file` made: the prediction, the file written, its picture, each target's relative L2
    where the input held the truth (else None), the body's force coefficients ({"predicted", "true"}:
    the true ones integrated alike from the input's fields, None without them) when the model predicts the
    surface fields they follow from (a 2D body's surface fields are drawn along it too, `<out>_surface.png`),
    and what the model's calibration says about this prediction (`TrustReport`: bands, the bound on its
    relative L2, the geometry's novelty); `seconds`: the wall time of each stage ("read", "queries",
    "predict", "write", "picture": the PNGs and the body forces)."""

    geometry: Geometry
    written: Path
    picture: Path
    errors: dict[str, float | None]
    forces: dict[str, ForceCoefficients | None] | None = None
    trust: TrustReport | None = None
    seconds: dict[str, float] | None = None


def predict_file(checkpoint: str | Path, geometry: str | Path, out: str | Path,
                 query: str | Path | Geometry | None = None,
                 constants: Mapping[str, Sequence[float] | float] | None = None, chunk: int = 200_000,
                 query_columns: str | None = None, surface: str | Path | None = None,
                 generate: Mapping[str, Any] | None = None, read: ReadOptions = AS_IS, confidence: float = CONFIDENCE,
                 level: float = NOVELTY_LEVEL) -> FilePrediction:
    """Predict the model's fields for the geometry in `geometry` (any supported file, or an OpenFOAM case
    folder) at the points of `query` (another file; default: the geometry's own points), keeping that file's
    point order, cells and point fields (with `read.at="cells"`, the file's cells with the fields as cell data);
    write `out` (VTU, VTP, ...) and a PNG beside it. Where the file also
    holds a target field, the output keeps it as `<name>_true` with `<name>_error` (prediction minus truth),
    and its relative L2 is returned (over the points, or for a field on a body over the body's).
    `query_columns` names the columns of a headerless query table; `surface`: the surface or mesh that a
    bare-cloud geometry samples (for models that use its signed distance); `generate`: queries made for the
    geometry instead of a file (`grid`, `random` or `surface`, see `generated_queries`); `read`: how the
    geometry is read, as on import (`ReadOptions`: columns, patches, time, blocks, at, cp, cell_to_points);
    every option left at its default takes the value the model's training files were read with (what
    `geoop data import` recorded), and one given that differs from it is named in a warning. The
    case's parameters (`params.json`) fill the inputs of the same names unless `constants` gives them.
    A calibrated model also writes `<field>_lo`, `<field>_hi` (the band that holds the truth with probability
    `confidence`) and `<field>_scale`, draws the band's width, and reports the bound on the relative L2 and
    the geometry's novelty (flagged when its p-value is below `level`). Returns a `FilePrediction`."""
    clock = Stopwatch()
    operator = load_model(checkpoint)
    path = Path(geometry)
    params = {k: v for k, v in parameters(path).items() if k in operator.fields.inputs}
    params = {k: v for k, v in params.items() if k not in (constants or {})}
    if operator.fields.read:
        recorded = ReadOptions.from_dict(operator.fields.read)
        for name in read.overriding(recorded):
            warnings.warn(f"the model's training files were read with {recorded.flags()}; this one with "
                          f"{name} = {getattr(read, name)!r} (drop that option to read it as they were)",
                          stacklevel=2)
        read = read.filled_from(recorded)
    mesh = load_source(path, read, sort=False)  # the file's order is the output's
    g = as_sample(mesh, path, read, params)
    clock.lap("read")
    generate = {k: v for k, v in (generate or {}).items() if v}
    if generate and query is not None:
        raise GeoopError("give a query file or generated queries, not both")
    if generate:
        queries = generated_queries(g, **generate)
    elif isinstance(query, Geometry) or query is None:
        queries = query
    else:
        queries = load(query, sort=False, **({"columns": query_columns} if query_columns else {}))
    shape = load(surface) if surface is not None else None
    clock.lap("queries")
    bands = operator.trust is not None and operator.trust.calibration is not None
    result = operator.predict(g, queries, constants=constants, chunk=chunk, shape=shape, bands=bands,
                              confidence=confidence)
    report = operator.trust_report(g, result, confidence, level, constants)
    clock.lap("predict")
    at = g if queries is None else queries
    targets = list(operator.fields.targets)
    extra = {k: v for k, v in at.point_data.items() if k not in targets} if queries is None else {}
    errors: dict[str, float | None] = dict.fromkeys(targets)
    for name in targets:
        if name in at.point_data and np.shape(at.point_data[name]) == np.shape(result.point_data[name]):
            truth = np.asarray(at.point_data[name], dtype=np.float64)
            diff = result.point_data[name] - truth
            extra[f"{name}_true"], extra[f"{name}_error"] = truth, diff
            mask = operator.fields.specs[name].get("mask")  # a field on a body is scored on the body
            on = at.point_mask(mask) if mask in at.point_data else np.ones(at.n_points, dtype=bool)
            errors[name] = float(np.linalg.norm(diff[on]) / max(np.linalg.norm(truth[on]), 1e-300))
    result = result.with_point_data(**extra)
    if read.at == "cells" and queries is None:  # the faces (cells) carry their values, for ParaView
        written = cell_fields(mesh, result.point_data).save(out)
    else:
        written = result.save(out)
    clock.lap("write")
    known = [name for name, e in errors.items() if e is not None]
    panels = {name: [f"{name}_true", name, f"{name}_error"] if name in known else [name] for name in targets}
    if bands:  # the band's width beside the first field: where the model is unsure
        first = targets[0]
        width = np.asarray(result.point_data[f"{first}_hi"]) - np.asarray(result.point_data[f"{first}_lo"])
        result = result.with_point_data(**{f"{first}_band": width})
        panels[first].insert(2 if first in known else 1, f"{first}_band")
    shown = [f for name in targets for f in panels[name]]
    titles = [("true " + f[:-5]) if f.endswith("_true") else ("error " + f[:-6]) if f.endswith("_error")
              else f"{confidence:.0%} band width of {f[:-5]}" if f.endswith("_band") else f"predicted {f}"
              for f in shown]
    masks = {name: operator.fields.specs[name].get("mask") for name in targets}
    body = ForceSpec.from_dict(operator.fields.forces).surface if operator.fields.forces else None
    body = body or next((m for m in masks.values() if m), None)
    grid = grid_shape(generate["grid"]) if generate.get("grid") else None
    where = f" (the slice z = {result.points[grid[2] // 2, 2]:.4g})" if grid is not None and len(grid) == 3 else ""
    picture = plot_fields(result, shown, Path(out).with_suffix(".png"), titles=titles,
                          shared=[[f"{name}_true", name] for name in known], suptitle=Path(geometry).name + where,
                          grid=grid, body=body, on_body={f for name in targets if masks[name] == body
                                                         for f in panels[name]},
                          rows=[len(panels[name]) for name in targets] if len(shown) > 4 else None)
    forces = None
    if operator.fields.forces and queries is None:
        spec = ForceSpec.from_dict(operator.fields.forces)
        forces = body_forces(spec, g, result, constants)
        if forces is not None:
            profile = result.with_point_data(**{spec.surface: g.point_data[spec.surface]})
            draw = plot_surface_profile if g.dim == 2 else plot_body_views
            draw(profile, spec.surface, spec.fields_needed(), Path(out).with_name(Path(out).stem + "_surface.png"),
                 suptitle=Path(geometry).name)
    clock.lap("picture")
    return FilePrediction(result, written, picture, errors, forces, report, clock.laps)


def body_forces(spec: ForceSpec, geometry: Geometry, prediction: Geometry,
                constants: Mapping[str, Sequence[float] | float] | None = None
                ) -> dict[str, ForceCoefficients | None] | None:
    """The force coefficients of the body in `geometry` from the `prediction` at its points, and from its own
    fields where it has them (the truth, integrated alike); None when it has no surface mask."""
    filled = {k: np.broadcast_to(np.asarray(v, dtype=np.float64), (geometry.n_points, np.size(v))).copy()
              for k, v in (constants or {}).items() if k == spec.freestream}
    body = geometry.with_point_data(**filled)
    if spec.surface not in body.point_data or spec.freestream not in body.point_data:
        return None
    known = all(f in body.point_data for f in spec.fields_needed())
    return {"predicted": spec.of(body, prediction.point_data), "true": spec.of(body) if known else None}
