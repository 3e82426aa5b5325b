"""`FieldOperator`: a registered model plus everything that turns a user's geometry and physical fields into
its inputs and its outputs back into physical fields. It is what training optimises, what a checkpoint holds and
what `geoop.load_model` returns."""
from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm
from geoop.data.pyg import Data

from geoop.data.features import InputLayout, sample_features
from geoop.data.panel_method import potential_flow_fields
from geoop.errors import GeoopError, GeometryError
from geoop.geometry.geometry import Geometry
from geoop.geometry.sdf import distance_function, distance_kind
from geoop.graph.graphs import mesh_edge_index, subgraph_edges
from geoop.graph.interpolation import idw_matrix
from geoop.graph.structures import Structure
from geoop.models.base import Evaluation, Need, SampleInputs
from geoop.models.registry import model_from_config


class FieldOperator(nn.Module):
    """Physical fields at a geometry's points -> physical fields at any query points.

    Coordinates are mapped isotropically into the training data's `[-1, 1]^d` box (`center`, `scale`); input
    channels and targets are standardised with statistics of the training split. All of these are buffers, so
    the state dict (and a checkpoint) carries them with the weights.

    Args:
        model: a registry model (see `geoop.models.registry`). model_config: its `build_model` config.
        fields: {"inputs": [names], "targets": [names], "specs": {name: {"components", "mask", ...}},
        "extension": how far masked inputs were carried inward (see `InputLayout`), "lift": {target:
        input} targets predicted as an input field plus the model's output (see `lift_channels`), "scale":
        {target: "input" or "input^k"} targets the model learns divided by the input's magnitude to the power k
        (see `scale_channels`), "body": the 0/1 point field of a body inside the domain, whose nodes alone are
        boundary and whose signed distance the models see (see `sample_features`), "potential_flow": the
        free-stream input whose inviscid flow around the body is added to the inputs, "viscosity": with it, the
        flat-plate skin friction under that flow too (see `potential_flow_fields`)}.
        center `(d,)`, scale: the coordinate map. x_mean, x_std `(C_in,)`, y_mean, y_std `(C_out,)`.
        y_low, y_high `(C_out,)`: the 1st and 99th percentiles of the training targets (for clipped errors).
    Shapes: forward(x `(N, C_in)`, prepared, x_at_queries `(M, C_in)` or None) -> `(M, C_out)` physical values
    at the prepared queries (x_at_queries: the inputs there, needed by lifted targets when the queries are not
    the points).
    """

    def __init__(self, model: nn.Module, model_config: dict[str, Any], fields: dict[str, Any],
                 center: Sequence[float], scale: float, x_mean: Sequence[float], x_std: Sequence[float],
                 y_mean: Sequence[float], y_std: Sequence[float], y_low: Sequence[float] | None = None,
                 y_high: Sequence[float] | None = None):
        super().__init__()
        self.model, self.model_config, self.fields = model, model_config, fields
        self.dim = len(center)
        as_t = lambda v: torch.as_tensor(np.asarray(v, dtype=np.float32).reshape(-1))  # noqa: E731
        self.register_buffer("center", as_t(center))
        self.register_buffer("scale", as_t([scale]))
        inf = [float("inf")] * len(y_mean)
        for name, value in (("x_mean", x_mean), ("x_std", x_std), ("y_mean", y_mean), ("y_std", y_std),
                            ("y_low", [-v for v in inf] if y_low is None else y_low),
                            ("y_high", inf if y_high is None else y_high)):
            self.register_buffer(name, as_t(value))
        targets, sources = lift_channels(fields)
        self.register_buffer("lift_targets", torch.tensor(targets, dtype=torch.int64), persistent=False)
        self.register_buffer("lift_sources", torch.tensor(sources, dtype=torch.int64), persistent=False)
        self.scales = scale_channels(fields)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FieldOperator:
        """An untrained operator shaped like `config` (see `config`); load a state dict into it."""
        n = config["normalization"]
        return cls(model_from_config(config["model"]), config["model"], config["fields"], n["center"], n["scale"],
                   n["x_mean"], n["x_std"], n["y_mean"], n["y_std"], n.get("y_low"), n.get("y_high"))

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description: model class and options, fields, normalization statistics."""
        lists = {k: getattr(self, k).tolist() for k in ("center", "x_mean", "x_std", "y_mean", "y_std", "y_low",
                                                         "y_high")}
        return {"model": self.model_config, "fields": self.fields,
                "normalization": {**lists, "scale": float(self.scale)}}

    @property
    def target_slices(self) -> dict[str, slice]:
        """Output channels of each target field."""
        return target_slices(self.fields)

    def to_model_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """`(N, d)` physical -> `(N, d)` model coordinates."""
        return (points.float().to(self.center.device) - self.center) / self.scale

    @property
    def needs(self) -> frozenset[Need]:
        """What the model's `prepare` takes from a sample (its `needs`, less what its options turned off)."""
        return self.model.takes

    @property
    def needs_geometry(self) -> bool:
        """Whether `prepare` needs the sample's `Geometry` (for a distance function, mesh edges or cells)."""
        return bool({Need.SDF, Need.MESH_EDGES, Need.CELLS} & self.needs)

    def sample_inputs(self, data: Data, geometry: Geometry | None = None,
                      shape: Geometry | None = None) -> SampleInputs:
        """What the model's `prepare` reads of sample `data` (the inputs it declares in `needs`), in model
        coordinates."""
        needs = self.needs
        if self.needs_geometry and geometry is None:
            raise GeometryError("this model uses the sample's geometry (distance function, mesh edges or cells)")
        given: dict[str, Any] = {"weights": data.weight, "boundary": data.boundary, "normals": data.normal,
                                 "boundary_weights": data.boundary_weight}
        if Need.SDF in needs:
            distance = distance_function(geometry, self.fields.get("body")) if shape is None else \
                distance_function(shape)
            center, scale = self.center.double().cpu().numpy(), float(self.scale)
            given["sdf_fn"] = lambda p: distance(p * scale + center) / scale
        if Need.MESH_EDGES in needs and geometry.cells:
            edges = mesh_edge_index(geometry)
            if getattr(data, "kept_points", None) is not None:
                edges = subgraph_edges(edges, data.kept_points, geometry.n_points)
            given["mesh_edges"] = edges
        if Need.CELLS in needs:
            whole = geometry is not None and geometry.kind == "volume" and getattr(data, "kept_points", None) is None
            given["cells"] = geometry.simplices if whole else None
        return SampleInputs(**given).only(needs)

    @torch.no_grad()
    def prepare(self, data: Data, geometry: Geometry | None = None, queries: torch.Tensor | None = None,
                shape: Geometry | None = None, inputs: SampleInputs | None = None) -> Structure:
        """The model's per-geometry structures (graphs, grids, interpolation weights) for one sample `data`
        (see `sample_features`), at `queries (M, d)` in physical coordinates (default: its points). `geometry`
        supplies the distance function and mesh edges for models that use them; `shape` (a surface or mesh)
        the distance function instead, for a geometry that is a bare cloud. A `data` subsampled from
        `geometry` names its points in `data.kept_points`, and the mesh edges follow it (`subgraph_edges`).
        `inputs`: the sample's `sample_inputs`, when already computed."""
        pos = self.to_model_coordinates(data.pos).cpu()
        q = None if queries is None else self.to_model_coordinates(torch.as_tensor(queries)).cpu()
        inputs = self.sample_inputs(data, geometry, shape) if inputs is None else inputs
        try:
            return self.model.prepare(pos, q, inputs)
        except GeoopError:
            raise
        except ValueError as e:  # what the model cannot take, said for this geometry
            fix = "give a geometry of the kind the model was trained on (see its model.json)"
            raise GeometryError(str(e), path=getattr(geometry, "source", None), fix=fix) from None

    def encode(self, x: torch.Tensor, prepared: Any) -> Any:
        """The model's latent state of inputs `x (N, C_in)` (physical): what every query reads."""
        return self.model.encode((x - self.x_mean) / self.x_std if x.shape[1] else None, prepared)

    def decode(self, state: Any, prepared: Any, x: torch.Tensor, x_at_queries: torch.Tensor | None = None
               ) -> torch.Tensor:
        """`(M, C_out)` physical values at the prepared queries from the `encode` state (see `forward`)."""
        return self._output(self.model.decode(state, prepared), x, x_at_queries)

    def forward(self, x: torch.Tensor, prepared: Any, x_at_queries: torch.Tensor | None = None) -> torch.Tensor:
        out = self.model((x - self.x_mean) / self.x_std if x.shape[1] else None, prepared)
        return self._output(out, x, x_at_queries)

    def _output(self, out: torch.Tensor, x: torch.Tensor, x_at_queries: torch.Tensor | None) -> torch.Tensor:
        out = out.float() * self.y_std + self.y_mean
        base = x if x_at_queries is None else x_at_queries
        if self.scales:
            out = out * target_multiplier(base.float(), self.scales, out.shape[1])
        if len(self.lift_targets):
            out = out.index_add(1, self.lift_targets, base[:, self.lift_sources].float())
        return out

    @property
    def needs_query_inputs(self) -> bool:
        """Whether outputs depend on the input fields at the queries (lifted or scaled targets)."""
        return bool(len(self.lift_targets) or self.scales)

    def evaluation(self, mode: Evaluation):
        """The model's evaluation mode for a block (see `Operator.evaluation`): `"single"` for one pass of a
        symmetry-averaged model, as the trainer's per-epoch validation uses."""
        return self.model.evaluation(mode)

    @torch.no_grad()
    def predict(self, geometry: Geometry, queries: np.ndarray | Geometry | None = None,
                constants: Mapping[str, Sequence[float] | float] | None = None,
                chunk: int = 200_000, shape: Geometry | None = None, encode_once: bool = True) -> Geometry:
        """Predicted target fields of `geometry` (which carries the model's input fields as point data) at
        `queries`: `(M, d)` points, a `Geometry` (its cells are kept, for ParaView), or None for the
        geometry's own points, in their order. `constants` fills input fields that are the same at every point
        (e.g. `{"freestream": [1, 0, 0]}`). Queries run in chunks of `chunk` points, so memory stays bounded.
        `shape`: the surface or mesh that a bare-cloud `geometry` samples, for models that use its signed
        distance (without it such a model refuses a cloud, see `check_distance`). The input side is encoded
        once and each chunk decoded from it; `encode_once=False` runs the whole model per chunk instead (the
        same values, for comparison: see benchmarks/predict_scale.py)."""
        if geometry.dim != self.dim:
            raise GeometryError(f"this model was trained on {self.dim}D data; the geometry is {geometry.dim}D",
                                path=geometry.source)
        self.check_distance(geometry if shape is None else shape)
        if constants:
            filled = {}
            for name, value in constants.items():
                row = np.asarray(value, dtype=np.float64).reshape(1, -1)
                column = np.repeat(row, geometry.n_points, axis=0)
                filled[name] = column[:, 0] if row.shape[1] == 1 else column
            geometry = geometry.with_point_data(**filled)
        if self.fields.get("potential_flow"):
            geometry = geometry.with_point_data(**potential_flow_fields(
                geometry, self.fields["body"], self.fields["potential_flow"], self.fields.get("viscosity")))
        data = sample_features(geometry, self.fields["inputs"], self.fields["specs"],
                               extension=self.fields.get("extension", 0), body=self.fields.get("body"))
        target = queries if isinstance(queries, Geometry) else None
        q = geometry.points if queries is None else (target.points if target is not None else np.asarray(queries))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise GeometryError(f"queries must have shape (M, {self.dim}), got {q.shape}", path=geometry.source)
        self._warn_outside(geometry.points, q, geometry.source)
        values = self._predict_chunks(data, geometry, shape, q, chunk, encode_once)
        fields = {name: values[:, s].squeeze(1) if s.stop - s.start == 1 else values[:, s]
                  for name, s in self.target_slices.items()}
        if target is not None:
            return Geometry(target.points, target.cells, point_data={**target.point_data, **fields},
                            source=target.source)
        return Geometry(q, geometry.cells if queries is None else None, point_data=fields, source=geometry.source)

    def _predict_chunks(self, data: Data, geometry: Geometry, shape: Geometry | None, q: np.ndarray,
                        chunk: int, encode_once: bool) -> np.ndarray:
        """`(M, C_out)` predictions at `q` in physical coordinates: the input side is prepared and encoded
        once, then every chunk of queries gets its own query-side structures and is decoded (with
        `encode_once=False` the whole model runs for every chunk)."""
        device = self.center.device
        x = data.x.to(device)
        split = encode_once
        inputs = self.sample_inputs(data, geometry, shape)
        starts = range(0, len(q), chunk)
        prepared = state = None
        parts = []
        for start in tqdm(starts, desc="predict", unit="chunk", disable=len(starts) < 3, leave=False):
            block = torch.tensor(q[start:start + chunk], dtype=torch.float64)
            if prepared is None or not split:
                prepared = self.prepare(data, geometry, block, shape, inputs)
                prepared = prepared.to(device)
                if split:
                    state = self.encode(x, prepared)
            else:
                prepared = self.model.with_queries(prepared, self.to_model_coordinates(block).to(device), inputs)
            at = None
            if self.needs_query_inputs:  # lifted and scaled targets need the inputs at the queries
                at = torch.sparse.mm(idw_matrix(data.pos.double(), block), data.x.float()).to(device)
            parts.append((self.decode(state, prepared, x, at) if split else self(x, prepared, at)).cpu())
        return torch.cat(parts).double().numpy() if parts else np.zeros((0, int(self.y_mean.numel())))

    def check_distance(self, shape: Geometry) -> None:
        """Refuse a geometry whose distance function is of another kind than the training data's (a bare cloud
        has only the distance to its nearest point) when the model feeds that distance to the network."""
        trained = self.fields.get("distance")
        if Need.SDF not in self.needs or trained is None:
            return
        given = distance_kind(shape)
        if given != trained:
            what = {"signed": "the signed distance to a closed boundary", "unsigned": "the distance to an open "
                    "surface", "points": "the distance to the nearest point of a bare cloud"}
            raise GeometryError(f"the model was trained with {what[trained]}, but this geometry gives "
                                f"{what[given]}; its predictions would be off", path=shape.source,
                                fix="pass the surface or mesh the points belong to as well (geoop predict "
                                    "--surface body.stl; FieldOperator.predict(..., shape=surface))"
                                if given == "points" else "give a geometry of the kind the model was trained on")

    def _warn_outside(self, points: np.ndarray, queries: np.ndarray, source: Any) -> None:
        """Warn (once per call) when the geometry or queries leave the training box by more than 10%."""
        center, scale = self.center.double().cpu().numpy(), float(self.scale)
        reach = max(float(np.abs((points - center) / scale).max(initial=0)),
                    float(np.abs((queries - center) / scale).max(initial=0)))
        if reach > 1.1:
            warnings.warn(f"{source or 'geometry'}: points reach {reach:.2f} in the model's coordinates, where the "
                          "training data filled [-1, 1]; predictions out there are extrapolation",
                          stacklevel=3)


def target_slices(fields: dict[str, Any]) -> dict[str, slice]:
    """Output channels of each target field of `fields` (see `FieldOperator`)."""
    out, start = {}, 0
    for name in fields["targets"]:
        c = fields["specs"][name]["components"]
        out[name] = slice(start, start + c)
        start += c
    return out


def lift_channels(fields: dict[str, Any]) -> tuple[list[int], list[int]]:
    """Output channels and the input channels added to them, for the targets that `fields["lift"]` predicts as an
    input field plus a learned difference: a boundary-value target (u = g on the Dirichlet boundary) from the
    input's extension inward, a velocity from the free stream it tends to. The model then learns only what the
    input does not already say."""
    layout = InputLayout(tuple(fields["inputs"]), fields["specs"], float(fields.get("extension", 0)))
    slices = target_slices(fields)
    targets, sources = [], []
    for target, source in (fields.get("lift") or {}).items():
        if target not in slices:
            raise GeoopError(f"data.lift names {target!r}, which is not a target (targets: {list(slices)})",
                             fix="lift only target fields, e.g. data.lift={u: g}")
        if source not in fields["inputs"]:
            raise GeoopError(f"data.lift lifts {target!r} by {source!r}, which is not an input "
                             f"(inputs: {fields['inputs']})", fix="name an input field of the same components")
        masked = bool(fields["specs"][source].get("mask"))
        if masked and not layout.extension:
            raise GeoopError(f"data.lift: {source!r} is boundary data; lifting by it needs its extension inward",
                             fix="leave data.extension at its default (or > 0)")
        s = slices[target]
        channels = layout.channels_of(source, extended=masked)
        if len(channels) != s.stop - s.start:
            raise GeoopError(f"data.lift: {target!r} has {s.stop - s.start} components but {source!r} has "
                             f"{len(channels)}", fix="lift a target by an input with as many components")
        targets += list(range(s.start, s.stop))
        sources += channels
    return targets, sources


def scale_channels(fields: dict[str, Any]) -> list[tuple[list[int], list[int], float]]:
    """(output channels, input channels, power k) for each target that `fields["scale"]` ({target: "input" or
    "input^k"}) has the model learn in units of an input's magnitude: target / |input|^k, e.g. a velocity over
    the free-stream speed (k = 1) and a kinematic pressure over its square (k = 2), which makes flows at
    different speeds look alike. The magnitude is taken per point over the input's components."""
    layout = InputLayout(tuple(fields["inputs"]), fields["specs"], float(fields.get("extension", 0)))
    slices = target_slices(fields)
    out = []
    for target, text in (fields.get("scale") or {}).items():
        source, _, power = str(text).partition("^")
        source = source.strip()
        if target not in slices:
            raise GeoopError(f"data.scale names {target!r}, which is not a target (targets: {list(slices)})",
                             fix="scale only target fields, e.g. data.scale={p: 'freestream^2'}")
        if source not in fields["inputs"] or fields["specs"][source].get("mask"):
            raise GeoopError(f"data.scale scales {target!r} by {source!r}, which is not an input defined everywhere "
                             f"(inputs: {fields['inputs']})", fix="name an unmasked input field, e.g. freestream")
        try:
            k = float(power) if power else 1.0
        except ValueError:
            raise GeoopError(f"data.scale: {text!r} is not 'input' or 'input^k'", fix="e.g. freestream^2") from None
        s = slices[target]
        out.append((list(range(s.start, s.stop)), layout.channels_of(source), k))
    return out


def target_multiplier(x: torch.Tensor, scales: list[tuple[list[int], list[int], float]], channels: int
                      ) -> torch.Tensor:
    """`(N, C_out)`: |x[:, input channels]|^k on the channels of each scaled target (`scale_channels`), 1
    elsewhere; inputs `x (N, C_in)` in physical units. A zero magnitude counts as 1e-12 of the largest."""
    factor = torch.ones(len(x), channels, dtype=x.dtype, device=x.device)
    for targets, sources, k in scales:
        size = x[:, sources].norm(dim=1)
        size = size.clamp_min(1e-12 * float(size.max().clamp_min(1e-30))) if len(size) else size
        factor[:, targets] = size[:, None] ** k
    return factor
