"""The non-learned baselines of the accuracy benchmark, scored like the learned models: relative L2 per field
over the test split (plain and clipped to the training range) and the force coefficients integrated from the
predicted surface fields.

`nearest_designs`: predict a new case from the k training cases nearest to it
in design-parameter space (the parameters the family draws, standardised on the training split), each one's
fields carried onto the new case's points by nearest point (volume fields in the frame the cases share; a field
on a body's surface from that case's surface, in coordinates normalised by each body's bounding box, so that an
upper side lands on the upper side however thick the body), averaged with inverse-distance weights. A flow
family's velocity, pressure and eddy viscosity are carried in units of each case's free-stream speed (U/|U_inf|,
p/|U_inf|^2, nut/|U_inf|), so a design at another speed still tells the shape of the flow. No training: a
surrogate that does not beat it has learned nothing a lookup table would not give.

`training_mean`: every training case's fields carried onto the new case's points by nearest point (on surfaces,
and for a field on a body, in coordinates normalised by each body's bounding box) and averaged: what the data
says without knowing which design is nearer, for data with no design parameters (imported cases).
`mean_field`: the training split's mean of each target channel, everywhere.

`panel_method`: the inviscid flow around the body (geoop.data.panel_method; 2D): U, p and cp from it, nut and the
skin friction zero. A surrogate that does not beat it has learned nothing a textbook would not give.

    python benchmarks/nonlearned.py DATASET [--method nearest_designs|training_mean|mean_field|panel_method] [--k 5]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from scipy.spatial import cKDTree

from geoop.data.dataset import SimulationDataset
from geoop.data.families import get_family
from geoop.errors import GeoopError
from geoop.metrics.forces import force_errors
from geoop.models.fields import Fields
from geoop.training.losses import field_errors


def design_parameters(dataset: SimulationDataset) -> np.ndarray:
    """`(S, P)` the design parameters of each sample of `dataset` (from the manifest's per-sample values)."""
    names = get_family(dataset.manifest.family).parameters
    if not names:
        raise GeoopError(f"the {dataset.manifest.family} family names no design parameters")
    values = {r["index"]: r["values"] for r in dataset.manifest.samples}
    return np.array([[values[i][n] for n in names] for i in dataset.ids], dtype=np.float64)


def _unit_box(points: np.ndarray) -> np.ndarray:
    lo, hi = points.min(0), points.max(0)
    return (points - lo) / np.maximum(hi - lo, 1e-300)


def carried(source, target, masks: list[np.ndarray | None], target_masks: list[np.ndarray | None]
            ) -> np.ndarray:
    """`(N_target, C)` the targets `source.y` carried onto `target`'s points by nearest point; a masked target
    (a surface field) from the nearest of the source's masked points, both surfaces mapped to their unit box."""
    src, dst = source.pos.double().numpy(), target.pos.double().numpy()
    y = source.y.double().numpy()
    out = np.zeros((len(dst), y.shape[1]))
    everywhere = cKDTree(src).query(dst)[1]
    for channel, (m, tm) in enumerate(zip(masks, target_masks, strict=True)):
        if m is None:
            out[:, channel] = y[everywhere, channel]
        else:
            on, where = np.flatnonzero(m), np.flatnonzero(tm)
            nearest = cKDTree(_unit_box(src[on])).query(_unit_box(dst[where]))[1]
            out[where, channel] = y[on[nearest], channel]
    return out


#: the power of the free-stream speed (a sample's `u_inf` value) that each flow field is carried in units of
FREESTREAM_POWER = {"U": 1, "p": 2, "nut": 1}


def speed_powers(dataset: SimulationDataset) -> tuple[np.ndarray, np.ndarray]:
    """`(S,)` each sample's free-stream speed (1 where the family has none) and `(C,)` the power of it each target
    channel is carried in."""
    values = {r["index"]: r["values"] for r in dataset.manifest.samples}
    speed = np.array([values[i].get("u_inf", 1.0) for i in dataset.ids], dtype=np.float64)
    slices = Fields(dataset.inputs, dataset.targets, dataset.specs).target_slices
    power = np.zeros(max(s.stop for s in slices.values()))
    for name, where in slices.items():
        power[where] = FREESTREAM_POWER.get(name, 0)
    return speed, power


def _nearest_designs(train: SimulationDataset, test: SimulationDataset, k: int):
    """Per test sample, `(N, C)` the inverse-distance mean of its k nearest training designs' fields, each in
    free-stream units (see `FREESTREAM_POWER`) and scaled back by the test case's speed."""
    p_train, p_test = design_parameters(train), design_parameters(test)
    (speed_train, power), (speed_test, _) = speed_powers(train), speed_powers(test)
    mean, std = p_train.mean(0), p_train.std(0)
    std = np.where(std > 0, std, 1.0)
    tree = cKDTree((p_train - mean) / std)

    def predict(j: int, data) -> np.ndarray:
        distance, near = tree.query((p_test[j] - mean) / std, k=min(k, len(train)))
        weight = 1.0 / np.maximum(np.atleast_1d(distance), 1e-9)
        channel_masks = data.y_mask.numpy().T
        out = np.zeros(tuple(data.y.shape))
        for w, i in zip(weight, np.atleast_1d(near), strict=True):
            source = train[int(i)]
            masks = [None if bool(mk.all()) else mk for mk in source.y_mask.numpy().T]
            targets = [None if m is None else tm for m, tm in zip(masks, channel_masks, strict=True)]
            units = (speed_test[j] / speed_train[int(i)]) ** power
            out += w * carried(source, data, masks, targets) * units
        return out / weight.sum()

    return predict


def _training_mean(train: SimulationDataset, test: SimulationDataset):
    """Per test sample, `(N, C)` the equal-weight mean of every training case's fields carried onto it (a
    surface sample's every field in unit-box coordinates, as a field on a body)."""
    surfaces = train.geometry(0).kind == "surface"

    def predict(j: int, data) -> np.ndarray:
        out = np.zeros(tuple(data.y.shape))
        for i in range(len(train)):
            source = train[i]
            masks = [np.ones(len(source.pos), dtype=bool) if surfaces else None if bool(mk.all()) else mk
                     for mk in source.y_mask.numpy().T]
            targets = [None if m is None else np.ones(len(data.pos), dtype=bool) if surfaces else tm
                       for m, tm in zip(masks, data.y_mask.numpy().T, strict=True)]
            out += carried(source, data, masks, targets)
        return out / len(train)

    return predict


def _mean_field(train: SimulationDataset):
    """Per test sample, `(N, C)` the training split's mean of each target channel (where it applies)."""
    y = torch.cat([train[i].y for i in range(len(train))]).double()
    on = torch.cat([train[i].y_mask for i in range(len(train))])
    mean = ((y * on).sum(0) / on.sum(0).clamp_min(1)).numpy()
    return lambda j, data: np.broadcast_to(mean, tuple(data.y.shape)).copy()


#: the baselines by name: (train, test, k) -> per-sample predictor
METHODS = {"nearest_designs": lambda train, test, k: _nearest_designs(train, test, k),
           "training_mean": lambda train, test, k: _training_mean(train, test),
           "mean_field": lambda train, test, k: _mean_field(train),
           "panel_method": lambda train, test, k: _panel_method(test)}


#: what the panel method answers for each target of airfoil2d (the rest: zero)
INVISCID = {"U": "u_potential", "p": "p_potential", "cp": "cp_potential"}


def _panel_method(test: SimulationDataset):
    """Per test sample, `(N, C)` the inviscid flow's values of the targets it has, zero for the others."""
    from geoop.data.potential_flow import potential_flow_fields

    slices = Fields(test.inputs, test.targets, test.specs).target_slices
    stream = get_family(test.manifest.family).forces.freestream

    def predict(j: int, data) -> np.ndarray:
        fields = potential_flow_fields(test.geometry(j), test.body, stream)
        out = np.zeros(tuple(data.y.shape))
        for target, source in INVISCID.items():
            if target in slices:
                out[:, slices[target]] = fields[source].reshape(len(out), -1)
        return out

    return predict


def evaluate(root: Path, method: str = "nearest_designs", k: int = 5) -> dict:
    """The baseline's test-split record (the fields the accuracy benchmark keeps for a cell)."""
    t0 = time.process_time()
    train, test = SimulationDataset(root, "train", cache=False), SimulationDataset(root, "test", cache=False)
    slices = Fields(train.inputs, train.targets, train.specs).target_slices
    predict = METHODS[method](train, test, k)
    y_all = torch.cat([train[i].y for i in range(len(train))]).double()
    m_all = torch.cat([train[i].y_mask for i in range(len(train))])
    low = torch.tensor([float(torch.quantile(y_all[m_all[:, c], c], 0.01)) for c in range(y_all.shape[1])])
    high = torch.tensor([float(torch.quantile(y_all[m_all[:, c], c], 0.99)) for c in range(y_all.shape[1])])
    clip = lambda v: torch.minimum(torch.maximum(v, low.float()), high.float())  # noqa: E731
    rel: dict[str, list[float]] = {n: [] for n in slices}
    clipped: dict[str, list[float]] = {n: [] for n in slices}
    spec, predicted, true = test.forces, [], []
    for j in range(len(test)):
        data = test[j]
        prediction = predict(j, data)
        pred = torch.from_numpy(prediction).float()
        batch = torch.zeros(len(pred), dtype=torch.int64)
        for name, e in field_errors(pred, data.y, data.y_mask, data.target_weight, batch, 1, slices).items():
            rel[name].append(float(e))
        for name, e in field_errors(clip(pred), clip(data.y), data.y_mask, data.target_weight, batch, 1,
                                    slices).items():
            clipped[name].append(float(e))
        if spec is not None:
            g = test.geometry(j)
            values = {f: prediction[:, slices[f]].squeeze(1) if slices[f].stop - slices[f].start == 1
                      else prediction[:, slices[f]] for f in spec.fields_needed()}
            predicted.append(spec.of(g, values))
            true.append(spec.of(g))
    record = {"test": {n: {"rel_l2": float(np.mean(v)), "rel_l2_clipped": float(np.mean(clipped[n]))}
                       for n, v in rel.items()},
              "test_rel_l2_mean": float(np.mean([np.mean(v) for v in rel.values()])), "test_samples": len(test),
              "cpu_seconds": time.process_time() - t0, "epochs": 0, "steps": 0, "parameters": 0, "curve": [],
              **({"k": k} if method == "nearest_designs" else {})}
    if spec is not None:
        record["test_forces"] = force_errors(predicted, true)
    return record


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", help="dataset folder (nearest_designs: a family with design parameters)")
    ap.add_argument("--method", default="nearest_designs", choices=list(METHODS))
    ap.add_argument("--k", type=int, default=5, help="how many nearest training designs to average")
    args = ap.parse_args()
    print(json.dumps(evaluate(Path(args.data), args.method, args.k)))


if __name__ == "__main__":
    main()
