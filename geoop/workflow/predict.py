"""`geoop predict`: a trained model applied to a geometry file, at its own points or at a query file's,
written as VTU (for ParaView) or any writable format, in the order of the input file, with a PNG."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from geoop.geometry.geometry import Geometry
from geoop.data.importer import parameters, read_sample
from geoop.io import load
from geoop.training.run import load_model
from geoop.viz.plot import plot_fields


def predict_file(checkpoint: str | Path, geometry: str | Path, out: str | Path, query: str | Path | None = None,
                 constants: Mapping[str, Sequence[float] | float] | None = None, chunk: int = 200_000,
                 columns: str | None = None, query_columns: str | None = None,
                 surface: str | Path | None = None, **source: Any
                 ) -> tuple[Geometry, Path, Path, dict[str, float | None]]:
    """Predict the model's fields for the geometry in `geometry` (any supported file, or an OpenFOAM case
    folder) at the points of `query` (another file; default: the geometry's own points), keeping that file's
    point order, cells and point fields; write `out` (VTU, VTP, ...) and a PNG beside it. Where the file also
    holds a target field, the output keeps it as `<name>_true` with `<name>_error` (prediction minus truth),
    and its relative L2 is returned.
    `columns`/`query_columns` name the columns of headerless tables; `surface`: the surface or mesh that a
    bare-cloud geometry samples (for models that use its signed distance); `source`: how the geometry is
    read, as on import (`patches`, `time`, `blocks`, `at`, `cp`, `cell_to_points`; see `read_sample`). The
    case's parameters (`params.json`) fill the inputs of the same names unless `constants` gives them.
    Returns (prediction, written file, picture, {target: its relative L2, or None where the file has no
    truth})."""
    operator = load_model(checkpoint)
    path = Path(geometry)
    params = {k: v for k, v in parameters(path).items() if k in operator.fields["inputs"]}
    params = {k: v for k, v in params.items() if k not in (constants or {})}
    g = read_sample(path, columns=columns, params=params, sort=False, **source)  # the file's order is the output's
    queries = load(query, sort=False, **({"columns": query_columns} if query_columns else {})) if query else None
    shape = load(surface) if surface is not None else None
    result = operator.predict(g, queries, constants=constants, chunk=chunk, shape=shape)
    at = g if queries is None else queries
    targets = list(operator.fields["targets"])
    extra = {k: v for k, v in at.point_data.items() if k not in targets} if queries is None else {}
    errors: dict[str, float | None] = dict.fromkeys(targets)
    for name in targets:
        if name in at.point_data and np.shape(at.point_data[name]) == np.shape(result.point_data[name]):
            truth = np.asarray(at.point_data[name], dtype=np.float64)
            diff = result.point_data[name] - truth
            extra[f"{name}_true"], extra[f"{name}_error"] = truth, diff
            errors[name] = float(np.linalg.norm(diff) / max(np.linalg.norm(truth), 1e-300))
    result = result.with_point_data(**extra)
    written = result.save(out)
    known = [name for name, e in errors.items() if e is not None]
    shown = [f for name in targets for f in ([f"{name}_true", name, f"{name}_error"] if name in known else [name])]
    titles = [("true " + f[:-5]) if f.endswith("_true") else ("error " + f[:-6]) if f.endswith("_error")
              else f"predicted {f}" for f in shown]
    shared = [f"{known[0]}_true", known[0]] if len(known) == 1 else []  # truth and prediction on one scale
    picture = plot_fields(result, shown, Path(out).with_suffix(".png"), titles=titles, shared=shared,
                          suptitle=Path(geometry).name)
    return result, written, picture, errors
