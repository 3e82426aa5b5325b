"""`geoop predict`: a trained model applied to a geometry file, at its own points or at a query file's,
written as VTU (for ParaView) and PNG."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from geoop.geometry.geometry import Geometry
from geoop.io import load
from geoop.training.run import load_model
from geoop.viz.plot import plot_fields


def predict_file(checkpoint: str | Path, geometry: str | Path, out: str | Path, query: str | Path | None = None,
                 constants: Mapping[str, Sequence[float] | float] | None = None,
                 chunk: int = 200_000) -> tuple[Geometry, Path, Path]:
    """Predict the model's fields for the geometry in `geometry` (any supported format) at the points of
    `query` (another file; default: the geometry's own points); write `out` (VTU or any writable format) and a
    PNG beside it. Returns (prediction, written file, picture)."""
    operator = load_model(checkpoint)
    g = load(geometry)
    queries = load(query, sort=False) if query is not None else None
    result = operator.predict(g, queries, constants=constants, chunk=chunk)
    written = result.save(out)
    fields = list(operator.fields["targets"])
    picture = plot_fields(result, fields, Path(out).with_suffix(".png"),
                          titles=[f"predicted {f}" for f in fields], suptitle=Path(geometry).name)
    return result, written, picture
