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

from geoop.data.features import sample_features
from geoop.data.potential_flow import potential_flow_fields
from geoop.errors import GeoopError, GeometryError
from geoop.geometry.geometry import Geometry
from geoop.geometry.quadrature import quadrature_weights
from geoop.geometry.sdf import distance_function, distance_kind
from geoop.graph.graphs import mesh_edge_index, subgraph_edges
from geoop.graph.interpolation import idw_matrix
from geoop.graph.structures import Structure
from geoop.models.base import Evaluation, Need, SampleInputs
from geoop.models.fields import Fields
from geoop.models.normalization import Normalizer
from geoop.models.registry import model_from_config
from geoop.trust.conformal import estimated_error
from geoop.trust.novelty import descriptor, outside_ranges
from geoop.trust.levels import CONFIDENCE, NOVELTY_LEVEL
from geoop.trust.record import Trust, TrustReport
from geoop.trust.scale_net import ScaleNet

#: what a FieldOperator's per-point scale comes from: one width per channel, a variance head trained with the
#: model, or a scale network fitted to the trained model's residuals
UNCERTAINTY = ("constant", "variance", "residual")


class FieldOperator(nn.Module):
    """Physical fields at a geometry's points -> physical fields at any query points: a registered model
    between a `Normalizer` (coordinates into the training data's box, channels standardised on the training
    split, lifted and scaled targets) and the run's `Fields` (which fields, how they become channels).

    Args:
        model: a registry model (see `geoop.models.registry`). model_config: its `build_model` config.
        fields: the run's `Fields` (or its dict). normalizer: fitted on the training split (see
        `geoop.training.normalization.fit_normalization`). uncertainty: what the per-point scale of the errors
        comes from: "variance", a second set of C_out output channels, a log-variance per target channel (a
        variance head, trained with a Gaussian likelihood beside the relative L2; see `Trainer`); "residual",
        `scale_net`, a `ScaleNet` fitted after training on the residuals over the training split (see
        `geoop.trust.scale_net`); "constant", one width per channel. trust: the model's calibration and
        novelty model (`geoop.trust.Trust`, fitted on the validation split after training).
    Shapes: forward(x `(N, C_in)`, prepared, x_at_queries `(M, C_in)` or None) -> `(M, C_out)` physical values
    at the prepared queries (x_at_queries: the inputs there, needed by lifted targets when the queries are not
    the points); with `with_scale=True` also the per-point scale `(M, C_out)` (see `Normalizer.spread`).
    """

    def __init__(self, model: nn.Module, model_config: dict[str, Any], fields: Fields | Mapping[str, Any],
                 normalizer: Normalizer, uncertainty: str = "constant", trust: Trust | None = None,
                 scale_net: ScaleNet | None = None):
        super().__init__()
        if uncertainty not in UNCERTAINTY:
            raise GeoopError(f"unknown uncertainty {uncertainty!r}", fix=f"use one of {', '.join(UNCERTAINTY)}")
        if (uncertainty == "residual") != (scale_net is not None):
            raise GeoopError("a residual scale is a ScaleNet, and a ScaleNet is a residual scale")
        self.model, self.model_config = model, model_config
        self.fields = fields if isinstance(fields, Fields) else Fields.from_dict(fields)
        self.normalizer = normalizer
        self.uncertainty, self.trust, self.scale_net = uncertainty, trust, scale_net
        self.dim = normalizer.dim
        self.register_load_state_dict_pre_hook(_legacy_normalizer_keys)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> FieldOperator:
        """An untrained operator shaped like `config` (see `config`); load a state dict into it. Configs of
        models trained before calibration existed have no `trust`: such a model predicts but has no bands."""
        fields = Fields.from_dict(config["fields"])
        trust = None if config.get("trust") is None else Trust.from_dict(config["trust"])
        scale_net = None if config.get("scale_net") is None else ScaleNet(**config["scale_net"])
        return cls(model_from_config(config["model"]), config["model"], fields,
                   Normalizer.from_statistics(fields, config["normalization"]),
                   config.get("uncertainty", "constant"), trust, scale_net)

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description: model class and options, fields, normalization statistics, the
        uncertainty kind and (once calibrated) the trust record."""
        return {"model": self.model_config, "fields": self.fields.to_dict(),
                "normalization": self.normalizer.statistics(), "uncertainty": self.uncertainty,
                "trust": None if self.trust is None else self.trust.to_dict(),
                "scale_net": None if self.scale_net is None else self.scale_net.config()}

    @property
    def target_slices(self) -> dict[str, slice]:
        """Output channels of each target field."""
        return self.fields.target_slices

    def to_model_coordinates(self, points: torch.Tensor) -> torch.Tensor:
        """`(N, d)` physical -> `(N, d)` model coordinates."""
        return self.normalizer.to_model_coordinates(points)

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
            distance = distance_function(geometry, self.fields.body) if shape is None else \
                distance_function(shape)
            center, scale = self.normalizer.center.double().cpu().numpy(), float(self.normalizer.scale)
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
        return self.model.encode(self.normalizer.inputs(x), prepared)

    def decode(self, state: Any, prepared: Any, x: torch.Tensor, x_at_queries: torch.Tensor | None = None,
               with_scale: bool = False, query_pos: torch.Tensor | None = None
               ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`(M, C_out)` physical values at the prepared queries from the `encode` state (see `forward`)."""
        return self._physical(self.model.decode(state, prepared), x if x_at_queries is None else x_at_queries,
                              with_scale, query_pos)

    def forward(self, x: torch.Tensor, prepared: Any, x_at_queries: torch.Tensor | None = None,
                with_scale: bool = False, query_pos: torch.Tensor | None = None
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        out = self.model(self.normalizer.inputs(x), prepared)
        return self._physical(out, x if x_at_queries is None else x_at_queries, with_scale, query_pos)

    def forward_with_scale(self, x: torch.Tensor, prepared: Any, x_at_queries: torch.Tensor | None = None,
                           query_pos: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward`'s values and the per-point scale `(M, C_out)` of their error (physical units); a residual
        scale also needs the queries' physical coordinates `query_pos (M, d)`."""
        return self(x, prepared, x_at_queries, with_scale=True, query_pos=query_pos)

    def scale_features(self, out: torch.Tensor, x: torch.Tensor, query_pos: torch.Tensor) -> torch.Tensor:
        """`(M, d + C_in + C_out)` what a `ScaleNet` reads at each query: model coordinates, standardised
        inputs and the model's standardised outputs `out (M, C_out)`."""
        inputs = self.normalizer.inputs(x)
        parts = [self.to_model_coordinates(query_pos)] + ([] if inputs is None else [inputs.float()])
        return torch.cat(parts + [out.float()], dim=1)

    def _physical(self, out: torch.Tensor, x: torch.Tensor, with_scale: bool, query_pos: torch.Tensor | None
                  ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        c = self.normalizer.out_channels
        mean = self.normalizer.outputs(out[:, :c], x)
        if not with_scale:
            return mean
        log_variance = out[:, c:] if self.uncertainty == "variance" else None
        if self.scale_net is not None:
            if query_pos is None:
                raise GeoopError("a residual error scale needs the queries' coordinates (query_pos)")
            log_variance = self.scale_net(self.scale_features(out[:, :c], x, query_pos))
        return mean, self.normalizer.spread(log_variance, x, len(out))

    @property
    def needs_query_inputs(self) -> bool:
        """Whether outputs depend on the input fields at the queries (lifted or scaled targets)."""
        return self.normalizer.uses_query_inputs

    def evaluation(self, mode: Evaluation):
        """The model's evaluation mode for a block (see `Operator.evaluation`): `"single"` for one pass of a
        symmetry-averaged model, as the trainer's per-epoch validation uses."""
        return self.model.evaluation(mode)

    @torch.no_grad()
    def predict(self, geometry: Geometry, queries: np.ndarray | Geometry | None = None,
                constants: Mapping[str, Sequence[float] | float] | None = None,
                chunk: int = 200_000, shape: Geometry | None = None, encode_once: bool = True,
                bands: bool = False, confidence: float = CONFIDENCE) -> Geometry:
        """Predicted target fields of `geometry` (which carries the model's input fields as point data) at
        `queries`: `(M, d)` points, a `Geometry` (its cells are kept, for ParaView), or None for the
        geometry's own points, in their order. `constants` fills input fields that are the same at every point
        (e.g. `{"freestream": [1, 0, 0]}`). Queries run in chunks of `chunk` points, so memory stays bounded.
        `shape`: the surface or mesh that a bare-cloud `geometry` samples, for models that use its signed
        distance (without it such a model refuses a cloud, see `check_distance`). The input side is encoded
        once and each chunk decoded from it; `encode_once=False` runs the whole model per chunk instead (the
        same values, for comparison: see benchmarks/predict_scale.py). `bands`: also `<field>_lo` and
        `<field>_hi`, the calibrated band that holds the truth with probability `confidence` (see docs/trust.md),
        and `<field>_scale`, the per-point scale it is a multiple of (the predicted values are the same as
        without bands); `trust_report` says what the band means for the whole prediction."""
        if bands and (self.trust is None or self.trust.calibration is None):
            raise GeoopError("this model has no calibration, so no error bands (trained before geoop calibrated "
                             "its models, or without a validation split)",
                             fix="retrain it with a validation split, or predict without bands")
        geometry, data = self.input_features(geometry, constants)
        self.check_distance(geometry if shape is None else shape)
        target = queries if isinstance(queries, Geometry) else None
        q = geometry.points if queries is None else (target.points if target is not None else np.asarray(queries))
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise GeometryError(f"queries must have shape (M, {self.dim}), got {q.shape}", path=geometry.source)
        self._warn_outside(geometry.points, q, geometry.source)
        values, scales = self._predict_chunks(data, geometry, shape, q, chunk, encode_once, bands)
        column = lambda v, s: v[:, s].squeeze(1) if s.stop - s.start == 1 else v[:, s]  # noqa: E731
        fields = {name: column(values, s) for name, s in self.target_slices.items()}
        if bands:
            for name, s in self.target_slices.items():
                half = self.trust.calibration.band(name, confidence) * column(scales, s)
                fields.update({f"{name}_lo": fields[name] - half, f"{name}_hi": fields[name] + half,
                               f"{name}_scale": column(scales, s)})
        if target is not None:
            return Geometry(target.points, target.cells, point_data={**target.point_data, **fields},
                            source=target.source)
        return Geometry(q, geometry.cells if queries is None else None, point_data=fields, source=geometry.source)

    def _predict_chunks(self, data: Data, geometry: Geometry, shape: Geometry | None, q: np.ndarray,
                        chunk: int, encode_once: bool, with_scale: bool = False
                        ) -> tuple[np.ndarray, np.ndarray | None]:
        """`(M, C_out)` predictions at `q` in physical coordinates (and their per-point scales `with_scale`):
        the input side is prepared and encoded once, then every chunk of queries gets its own query-side
        structures and is decoded (with `encode_once=False` the whole model runs for every chunk)."""
        device = self.normalizer.center.device
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
            at, where = None, None
            if self.needs_query_inputs or (with_scale and self.scale_net is not None):  # the inputs at the queries
                at = torch.sparse.mm(idw_matrix(data.pos.double(), block), data.x.float()).to(device)
                where = block.to(device)
            out = self.decode(state, prepared, x, at, with_scale, where) if split else \
                self(x, prepared, at, with_scale, where)
            parts.append(tuple(o.cpu() for o in out) if with_scale else (out.cpu(),))
        if not parts:
            empty = np.zeros((0, self.normalizer.out_channels))
            return empty, (empty if with_scale else None)
        values = torch.cat([p[0] for p in parts]).double().numpy()
        return values, (torch.cat([p[1] for p in parts]).double().numpy() if with_scale else None)

    def trust_report(self, geometry: Geometry, prediction: Geometry, confidence: float = CONFIDENCE,
                     level: float = NOVELTY_LEVEL, constants: Mapping[str, Sequence[float] | float] | None = None
                     ) -> TrustReport:
        """What the calibration says about `prediction` (made by `predict(geometry, ..., bands=True)` at the same
        `confidence`): per field the estimated relative L2 and its bound, the geometry's novelty p-value
        (flagged below `level`) and the input fields outside their training range. A model without
        calibration gives a report that says bands are unavailable."""
        trust = self.trust
        if trust is None or trust.calibration is None:
            return TrustReport(confidence, level, available=False)
        geometry = with_constants(geometry, constants)
        for name in self.target_slices:
            if f"{name}_scale" not in prediction.point_data:
                raise GeoopError(f"the prediction has no {name}_scale", fix="predict with bands=True")
        estimates = self._estimates(geometry, prediction.points, prediction.point_data)
        bands = {name: trust.calibration.band(name, confidence) for name in self.target_slices}
        bounds = {name: trust.calibration.error_bound(name, e, confidence) for name, e in estimates.items()}
        p_value = smallest = None
        inputs = [n for n in trust.ranges if n in geometry.point_data]
        if trust.novelty is not None and len(inputs) == len(trust.ranges):
            center, scale = self.normalizer.center.double().cpu().numpy(), float(self.normalizer.scale)
            p_value = float(trust.novelty.p_value(descriptor(geometry, center, scale, inputs, self.fields.body))[0])
            smallest = 1.0 / (len(trust.novelty.calibration) + 1)
        return TrustReport(confidence, level, True, bands, estimates, bounds, p_value,
                           outside_ranges(geometry, trust.ranges), smallest)

    def input_features(self, geometry: Geometry, constants: Mapping[str, Sequence[float] | float] | None = None
                       ) -> tuple[Geometry, Data]:
        """The geometry with its constant inputs filled (and the inviscid-flow prior where the model uses it) and
        its input `Data` (see `sample_features`): what the network reads."""
        if geometry.dim != self.dim:
            raise GeometryError(f"this model was trained on {self.dim}D data; the geometry is {geometry.dim}D",
                                path=geometry.source)
        geometry = with_constants(geometry, constants)
        f = self.fields
        if f.potential_flow:
            geometry = geometry.with_point_data(**potential_flow_fields(geometry, f.body, f.potential_flow,
                                                                        f.viscosity))
        return geometry, sample_features(geometry, list(f.inputs), f.specs, extension=f.extension, body=f.body)

    def _estimates(self, geometry: Geometry, points: np.ndarray, values: Mapping[str, np.ndarray]
                   ) -> dict[str, float]:
        """Per target field, `estimated_error` of the predicted values `values[name]` with their per-point scales
        `values[name + "_scale"]` at `points` (`(M, d)`): weighted by the geometry's quadrature weights over where
        the field is defined when the points are the geometry's own nodes, else equally."""
        at_nodes = len(points) == geometry.n_points and np.allclose(points, geometry.points)
        weights = quadrature_weights(geometry) if at_nodes else np.ones(len(points))
        out = {}
        for name in self.target_slices:
            mask = self.fields.specs[name].get("mask")
            where = np.ones(len(points), bool)
            if at_nodes and mask and mask in geometry.point_data:
                where = np.asarray(geometry.point_data[mask]).reshape(-1) > 0.5
            pred = np.asarray(values[name], dtype=np.float64).reshape(len(points), -1)
            scale = np.asarray(values[f"{name}_scale"], dtype=np.float64).reshape(pred.shape)
            out[name] = estimated_error(pred[where], scale[where], weights[where])
        return out

    @torch.no_grad()
    def estimated_errors(self, geometry: Geometry, constants: Mapping[str, Sequence[float] | float] | None = None
                         ) -> dict[str, float]:
        """Per target field, the relative L2 error this model expects of its prediction at `geometry`'s nodes,
        from its learned per-point scale sigma before any calibration: sqrt(sum w sigma^2) / sqrt(sum w y_hat^2)
        (see `estimated_error`). It ranks geometries by how unsure the model is (the designs worth simulating
        next, see `geoop.training.selection`); it needs a model that learned its scale (trained with
        `train.uncertainty=variance`, or fitted with `residual`)."""
        if self.uncertainty == "constant":
            raise GeoopError("this model has one error scale per channel, so it cannot say where it is unsure",
                             fix="train it with train.uncertainty=variance")
        geometry, data = self.input_features(geometry, constants)
        pred, scale = self._predict_chunks(data, geometry, None, geometry.points, 200_000, True, True)
        values = {}
        for name, s in self.target_slices.items():
            values[name], values[f"{name}_scale"] = pred[:, s], scale[:, s]
        return self._estimates(geometry, geometry.points, values)

    def check_distance(self, shape: Geometry) -> None:
        """Refuse a geometry whose distance function is of another kind than the training data's (a bare cloud
        has only the distance to its nearest point) when the model feeds that distance to the network."""
        trained = self.fields.distance
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
        center, scale = self.normalizer.center.double().cpu().numpy(), float(self.normalizer.scale)
        reach = max(float(np.abs((points - center) / scale).max(initial=0)),
                    float(np.abs((queries - center) / scale).max(initial=0)))
        if reach > 1.1:
            warnings.warn(f"{source or 'geometry'}: points reach {reach:.2f} in the model's coordinates, where the "
                          "training data filled [-1, 1]; predictions out there are extrapolation",
                          stacklevel=3)


def with_constants(geometry: Geometry, constants: Mapping[str, Sequence[float] | float] | None) -> Geometry:
    """`geometry` with each of `constants` (a value, or a vector's components) as a point field."""
    if not constants:
        return geometry
    filled = {}
    for name, value in constants.items():
        row = np.asarray(value, dtype=np.float64).reshape(1, -1)
        column = np.repeat(row, geometry.n_points, axis=0)
        filled[name] = column[:, 0] if row.shape[1] == 1 else column
    return geometry.with_point_data(**filled)


def _legacy_normalizer_keys(module: nn.Module, state_dict: dict[str, torch.Tensor], prefix: str, *_: Any) -> None:
    """Checkpoints written before the `Normalizer` was its own module kept its buffers at the top level."""
    for name in ("center", "scale", "x_mean", "x_std", "y_mean", "y_std", "y_low", "y_high"):
        if prefix + name in state_dict:
            state_dict[f"{prefix}normalizer.{name}"] = state_dict.pop(prefix + name)
