"""Fitting a trained operator's `Trust` on the validation split (never the test split) and scoring it on any
split: conformal bands and error bounds, the geometry novelty model, the input fields' training ranges."""
from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from geoop.data.dataset import SimulationDataset
from geoop.geometry import Geometry
from geoop.errors import GeoopError
from geoop.models.field_operator import FieldOperator
from geoop.training.checkpoint import load_checkpoint, save_checkpoint
from geoop.training.trainer import Evaluator
from geoop.trust.conformal import Calibration, calibrate, estimated_error, relative_l2
from geoop.trust.novelty import NoveltyModel, descriptor, input_ranges
from geoop.trust.levels import NOVELTY_LEVEL
from geoop.trust.record import Trust
from geoop.trust.scale_net import ScaleNet, fit_scale_net

log = logging.getLogger(__name__)

#: the confidence `evaluate` scores coverage at unless told otherwise
CONFIDENCE = 0.9


def described_inputs(operator: FieldOperator, dataset: SimulationDataset) -> list[str]:
    """The input fields a geometry of `dataset` carries itself (not those geoop derives, such as the
    potential-flow prior): what the novelty descriptor and the range check look at."""
    stored = dataset.manifest.fields["inputs"]
    return [n for n in operator.fields.inputs if n in stored]


@torch.no_grad()
def sample_records(operator: FieldOperator, dataset: SimulationDataset, evaluator: Evaluator,
                   progress: bool = False) -> list[dict[str, Any]]:
    """Per sample of `dataset`: for each target field the prediction, truth and per-point scale `(N, c)`,
    where it is defined `(N,)` and the quadrature weights `(N,)` (what `calibrate` takes)."""
    operator.eval()
    out = []
    for i in tqdm(range(len(dataset)), desc=f"calibrate ({dataset.split})", unit="sample", disable=not progress,
                  leave=False):
        data, prepared = evaluator.batch(dataset, [i])
        pred, scale = operator.forward_with_scale(data.x, prepared, query_pos=data.pos)
        weight = data.target_weight if data.target_weight.dim() == 2 else data.target_weight[:, None]
        fields = {}
        for name, s in operator.target_slices.items():
            fields[name] = {"pred": pred[:, s].double().cpu().numpy(), "truth": data.y[:, s].double().cpu().numpy(),
                            "scale": scale[:, s].double().cpu().numpy(),
                            "defined": data.y_mask[:, s].all(1).cpu().numpy(),
                            "weights": weight[:, min(s.start, weight.shape[1] - 1)].double().cpu().numpy()}
        out.append({"fields": fields})
    return out


def descriptors(operator: FieldOperator, dataset: SimulationDataset, inputs: list[str]) -> np.ndarray:
    """`(S, D)` the novelty descriptors of the geometries of `dataset` in the operator's box."""
    return described(operator, dataset, inputs)[0]


def described(operator: FieldOperator, dataset: SimulationDataset, inputs: list[str]
              ) -> tuple[np.ndarray, dict[str, tuple[list[float], list[float]]]]:
    """`descriptors` and the `input_ranges` of `dataset`'s geometries, each geometry read once."""
    center = operator.normalizer.center.double().cpu().numpy()
    scale = float(operator.normalizer.scale)
    rows = []

    def read() -> Iterator[Geometry]:
        for i in range(len(dataset)):
            geometry = dataset.geometry(i)
            rows.append(descriptor(geometry, center, scale, inputs, operator.fields.body))
            yield geometry

    ranges = input_ranges(read(), inputs)
    return np.stack(rows), ranges


def fit_trust(operator: FieldOperator, train_set: SimulationDataset, val_set: SimulationDataset,
              evaluator: Evaluator | None = None, progress: bool = False) -> Trust:
    """The operator's `Trust` from the validation split `val_set` (bands, bounds, novelty p-values) and the
    training split `train_set` (the novelty model's reference geometries, the input ranges)."""
    if val_set.split == "test":
        raise GeoopError("calibrating on the test split would make its coverage figures meaningless",
                         fix="calibrate on the validation split")
    if not len(val_set):
        return Trust(None, None, {})
    evaluator = evaluator or Evaluator(operator, device="cpu", batch_size=1, cache="memory")
    records = sample_records(operator, val_set, evaluator, progress)
    calibration = calibrate(records, val_set.split, operator.uncertainty)
    inputs = described_inputs(operator, train_set)
    reference, ranges = described(operator, train_set, inputs)
    novelty = NoveltyModel.fit(reference, descriptors(operator, val_set, inputs)) if len(val_set) >= 2 else None
    return Trust(calibration, novelty, ranges)


def calibrate_checkpoint(path: Path, train_set: SimulationDataset, val_set: SimulationDataset,
                         residual: bool = False, progress: bool = False) -> Trust:
    """Fit the `Trust` of the model in checkpoint `path` on `val_set` (and `train_set`, see `fit_trust`) and
    write it into the checkpoint (atomically; the model's weights unchanged). `residual`: first fit a
    `ScaleNet` to the model's residuals over `train_set` (see `fit_residual_scale`), stored beside the model."""
    weights, meta, _ = load_checkpoint(path)
    operator = FieldOperator.from_config(meta["operator"])
    operator.load_state_dict(weights)
    operator.eval()
    if residual:
        operator.scale_net, operator.uncertainty = fit_residual_scale(operator, train_set, progress=progress), \
            "residual"
    operator.trust = fit_trust(operator, train_set, val_set, progress=progress)
    save_checkpoint(path, operator.state_dict(), {**meta, "operator": operator.config()})
    return operator.trust


@torch.no_grad()
def _residuals(operator: FieldOperator, dataset: SimulationDataset, evaluator: Evaluator, samples: int,
               points: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`ScaleNet` features, standardised residuals and where targets are defined, at up to `points` random
    points of each of up to `samples` samples of `dataset`."""
    generator = torch.Generator().manual_seed(0)
    c = operator.normalizer.out_channels
    features, residuals, defined = [], [], []
    for i in torch.randperm(len(dataset), generator=generator)[:samples].tolist():
        data, prepared = evaluator.batch(dataset, [i])
        out = operator.model(operator.normalizer.inputs(data.x), prepared)[:, :c].float()
        pred = operator.normalizer.outputs(out, data.x)
        unit = operator.normalizer.spread(None, data.x, len(pred))
        pick = torch.randperm(len(pred), generator=generator)[:points]
        features.append(operator.scale_features(out, data.x, data.pos)[pick])
        residuals.append(((data.y.float() - pred) / unit)[pick])
        defined.append(data.y_mask[pick])
    return torch.cat(features), torch.cat(residuals), torch.cat(defined)


def fit_residual_scale(operator: FieldOperator, train_set: SimulationDataset, samples: int = 200,
                       points: int = 1000, progress: bool = False) -> ScaleNet:
    """A `ScaleNet` fitted to the trained operator's residuals on (up to `samples` samples and `points` points
    each of) its training split: where the model errs more, the scale is larger. The residuals of training
    samples are smaller than those of new ones; the calibration on the validation split fixes the level."""
    evaluator = Evaluator(operator, device="cpu", batch_size=1, cache="memory")
    if progress:
        log.info("fitting the residual error scale on %d training samples", min(samples, len(train_set)))
    return fit_scale_net(*_residuals(operator, train_set, evaluator, samples, points))


def score_trust(operator: FieldOperator, dataset: SimulationDataset, confidence: float = CONFIDENCE,
                level: float = NOVELTY_LEVEL, evaluator: Evaluator | None = None,
                progress: bool = False) -> dict[str, Any]:
    """How the operator's calibration holds on `dataset`: per field the empirical coverage of the bands over
    points and of the error bounds over samples and the mean band width (`coverage`), and per sample its
    novelty `p_value` and flag. Needs a calibrated operator."""
    trust = operator.trust
    if trust is None or trust.calibration is None:
        raise GeoopError("this model has no calibration (trained before geoop calibrated its models, or without "
                         "a validation split)", fix="retrain it with a validation split to get error bands")
    evaluator = evaluator or Evaluator(operator, device="cpu", batch_size=1, cache="memory")
    records = sample_records(operator, dataset, evaluator, progress)
    samples = []
    if trust.novelty is not None:
        inputs = described_inputs(operator, dataset)
        p = trust.novelty.p_value(descriptors(operator, dataset, inputs))
        samples = [{"id": int(i), "p_value": float(v), "flagged": bool(v < level)}
                   for i, v in zip(dataset.ids, p, strict=True)]
    cal = trust.calibration
    return {"confidence": confidence, "level": level, "calibrated_on": {"split": cal.split, "samples": cal.samples},
            "scale": cal.scale, "coverage": coverage(records, cal, confidence), "samples": samples,
            "flagged": sum(s["flagged"] for s in samples)}


def coverage(records: list[dict[str, Any]], calibration: Calibration, confidence: float) -> dict[str, Any]:
    """Per field of `records` (see `sample_records`): `point_coverage`, the share of defined points and
    components inside their band; `sample_coverage`, the share of samples whose relative L2 is within its
    bound; `band_width`, the mean full width of the bands, and `relative_band_width`, that over the field's
    root mean square; `bound_error_spearman`, how well the bounds rank the samples' true errors."""
    out = {}
    for name in records[0]["fields"] if records else []:
        q = calibration.band(name, confidence)
        inside = total = 0
        width, size, covered, bounds, errors = [], [], [], [], []
        for r in records:
            f = r["fields"][name]
            d = f["defined"]
            if not d.any():
                continue
            pred, truth, scale, w = f["pred"][d], f["truth"][d], f["scale"][d], f["weights"][d]
            inside += int((np.abs(truth - pred) <= q * scale).sum())
            total += truth.size
            width.append(float(2 * q * np.mean(scale)))
            size.append(float(np.sqrt(np.mean(truth ** 2))))
            err = relative_l2(pred, truth, w)
            bound = calibration.error_bound(name, estimated_error(pred, scale, w), confidence)
            covered.append(err <= bound)
            bounds.append(bound)
            errors.append(err)
        out[name] = {"point_coverage": inside / max(total, 1), "sample_coverage": float(np.mean(covered)),
                     "band_width": float(np.mean(width)),
                     "relative_band_width": float(np.mean(width) / max(float(np.mean(size)), 1e-30)),
                     "bound_error_spearman": _spearman(bounds, errors)}
    return out


def _spearman(a: list[float], b: list[float]) -> float | None:
    """Rank correlation of two sequences (None with fewer than 3 finite pairs)."""
    from scipy.stats import spearmanr

    pairs = [(x, y) for x, y in zip(a, b, strict=True) if math.isfinite(x) and math.isfinite(y)]
    if len(pairs) < 3:
        return None
    value = spearmanr([x for x, _ in pairs], [y for _, y in pairs]).statistic
    return None if not math.isfinite(value) else float(value)
