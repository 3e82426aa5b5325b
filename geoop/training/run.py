"""A training run from a config (YAML file + `key=value` overrides): datasets, normalization, model, Trainer,
and the test-split evaluation; plus loading a trained model back."""
from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from geoop.data.dataset import SimulationDataset
from geoop.data.manifest import write_json_atomic, write_text_atomic
from geoop.errors import GeoopError
from geoop.geometry.sdf import distance_kind
from geoop.models.field_operator import FieldOperator
from geoop.models.fields import Fields
from geoop.models.normalization import Normalizer
from geoop.models.registry import DataFacts, build_model
from geoop.training.checkpoint import file_hash, load_checkpoint
from geoop.training.calibration import calibrate_checkpoint, score_trust
from geoop.training.distributed import barrier, setup, teardown
from geoop.training.normalization import fit_normalization
from geoop.training.config import ModelConfig, RunConfig
from geoop.training.trainer import Evaluator, Trainer
from geoop.trust.levels import CONFIDENCE, NOVELTY_LEVEL
from geoop.viz.curves import plot_history

log = logging.getLogger(__name__)

def datasets(config: RunConfig
              ) -> tuple[SimulationDataset, SimulationDataset | None, SimulationDataset | None]:
    """Train, val and test splits of the configured dataset (None where a split is empty)."""
    d = config.data
    train = open_split(config, "train")
    splits = train.manifest.splits
    if not splits.get("train"):
        raise GeoopError("the training split of this dataset is empty", path=d.root,
                         fix="import or make it again with training samples (--fractions 0.8,0.1,0.1)")
    val = open_split(config, "val") if splits.get("val") else None
    test = open_split(config, "test") if splits.get("test") else None
    if test is None:
        warnings.warn(f"{d.root}: the dataset has no test split, so the run reports no test error "
                      "(errors on the training split would say nothing about unseen geometry); import it with "
                      "--fractions 0.8,0.1,0.1 or --test-from FOLDER to get one", stacklevel=2)
    return train, val, test


def open_split(config: RunConfig, split: str, cache: bool = True) -> SimulationDataset:
    """A split of the configured dataset with the configured fields (the training split subsampled as
    `data.subsample` says)."""
    d = config.data
    extra = {"subsample": d.subsample, "seed": config.train.seed} if split == "train" else {}
    return SimulationDataset(d.root, split, inputs=d.inputs, targets=d.targets, extension=float(d.extension or 0),
                             body=d.body, potential_flow=d.potential_flow, viscosity=d.viscosity, cache=cache,
                             **extra)


def import_options(train: SimulationDataset) -> dict[str, Any] | None:
    """How `geoop data import` read the dataset's files (None for data made or read as it is)."""
    from geoop.data.read_options import AS_IS, ReadOptions

    read = ReadOptions.from_dict(train.manifest.options)
    return None if read == AS_IS else read.to_dict()


def build_operator(train: SimulationDataset, model: ModelConfig, lift: dict[str, str] | None = None,
                   scale: dict[str, str] | None = None, uncertainty: str = "constant") -> FieldOperator:
    """A fresh `FieldOperator` for `train`'s fields, normalised on it, with the model `model`;
    `lift` {target: input}: targets predicted as that input plus the model's output (see `lift_channels`);
    `scale` {target: "input^k"}: targets learned in units of an input's magnitude (see `scale_channels`).
    Entries for fields this dataset does not have are skipped (a config serves several datasets), saying so.
    `uncertainty="variance"`: the model gets a second set of output channels, a log-variance per target
    channel (see `FieldOperator`)."""
    fields = Fields(train.inputs, train.targets, {n: train.specs[n] for n in train.inputs + train.targets},
                    extension=train.extension, lift=applicable(lift, train, "lift"),
                    scale=applicable(scale, train, "scale"), distance=distance_kind(train.geometry(0)),
                    forces=None if train.forces is None else train.forces.to_dict(), body=train.body,
                    potential_flow=train.potential_flow, viscosity=train.viscosity, read=import_options(train))
    stats = fit_normalization(train, fields)
    center, scale = np.asarray(stats["center"]), stats["scale"]
    points = [(train[i].pos.double().numpy() - center) / scale for i in range(len(train))]
    values, types, derived = train.layout.roles()
    vectors = train.layout.vector_starts(train.manifest.dim)
    outputs = train.target_channels * (2 if uncertainty == "variance" else 1)
    net, model_config = build_model(model.name, train.manifest.dim, train.input_channels, outputs,
                                    DataFacts(points, values, types, derived, vectors), **model.options)
    return FieldOperator(net, model_config, fields, Normalizer(fields, **stats), uncertainty)


def applicable(setting: dict[str, str] | None, train: SimulationDataset, name: str) -> dict[str, str]:
    """The entries of a per-target data setting (`data.lift`, `data.scale`) whose target and input this run
    has; the others are skipped with one line saying so (a config written for a dataset with other fields)."""
    out = {}
    for target, source in (setting or {}).items():
        base = str(source).partition("^")[0].strip()
        if target in train.targets and base in train.inputs:
            out[target] = source
        else:
            missing = target if target not in train.targets else base
            log.warning("data.%s: %s -> %s skipped: this run has no %s %r (targets %s, inputs %s)", name, target,
                        source, "target" if missing == target else "input", missing, train.targets, train.inputs)
    return out


def train(config: RunConfig) -> dict[str, Any]:
    """Run (or resume) the training `config` describes; returns {"out", "history", "test" (None without a test
    split), "rank", "world"}
    and writes `config.yaml`, the checkpoints, `metrics.jsonl`, `test_metrics.json` and `training.png` (loss
    curves) into `config["out"]`.
    Under torchrun (WORLD_SIZE > 1) each process calls this and they train data-parallel."""
    if config.threads:
        torch.set_num_threads(config.threads)
    settings = config.train
    context = setup(settings.device, settings.dist_timeout)
    try:
        out = Path(config.out)
        train_set, val_set, test_set = datasets(config)
        data_hash = file_hash(Path(config.data.root) / "manifest.json")
        torch.manual_seed(settings.seed)
        last = out / "last.safetensors"
        if last.is_file():
            operator = FieldOperator.from_config(load_checkpoint(last)[1]["operator"])
        else:
            operator = build_operator(train_set, config.model, config.data.lift, config.data.scale,
                                      "variance" if settings.uncertainty == "variance" else "constant")
        if context.is_main:
            out.mkdir(parents=True, exist_ok=True)
            write_text_atomic(out / "config.yaml", yaml.safe_dump(config.to_dict(), sort_keys=False))
        trainer = Trainer(operator, train_set, val_set, settings, out, data_hash, context)
        history = trainer.fit()
        calibration_seconds = None
        if context.is_main and val_set is not None:  # bands and novelty from the validation split only
            t0 = time.process_time()
            calibrate_checkpoint(out / "model.safetensors", train_set, val_set,
                                 residual=settings.uncertainty == "residual", progress=settings.progress)
            calibration_seconds = time.process_time() - t0
        barrier(context)
        model = load_model(out / "model.safetensors")
        best = Evaluator(model, settings.device, settings.amp, settings.batch_size, context=context,
                         cache=settings.cache, spare=out)
        test = None if test_set is None else best.evaluate(test_set)
        if context.is_main:
            if test is not None:
                if model.trust is not None and model.trust.calibration is not None:
                    test["trust"] = score_trust(model, test_set)
                test["calibration_cpu_seconds"] = calibration_seconds
                write_json_atomic(out / "test_metrics.json", test)
            plot_history(history, out / "training.png",
                         title=f"{config.model.name} on {train_set.manifest.family}")
        return {"out": out, "history": history, "test": test, "rank": context.rank, "world": context.world}
    finally:
        teardown()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> FieldOperator:
    """A trained `FieldOperator` (eval mode) from a checkpoint file or a run folder; nothing is unpickled."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.safetensors"
    if path.suffix == ".json":
        path = path.with_suffix(".safetensors")
    weights, meta, _ = load_checkpoint(path)
    operator = FieldOperator.from_config(meta["operator"])
    operator.load_state_dict(weights)
    return operator.to(device).eval()


def evaluate_checkpoint(checkpoint: str | Path, data: str | Path, split: str = "test", batch_size: int = 4,
                        confidence: float = CONFIDENCE, level: float = NOVELTY_LEVEL) -> dict[str, Any]:
    """Per-field errors of a trained model on a split of a dataset folder; for a calibrated model also
    `trust`: the coverage of its bands at `confidence` and each sample's novelty (see `score_trust`)."""
    operator = load_model(checkpoint)
    f = operator.fields
    dataset = SimulationDataset(data, split, inputs=list(f.inputs), targets=list(f.targets), extension=f.extension,
                                body=f.body, potential_flow=f.potential_flow, viscosity=f.viscosity)
    if dataset.manifest.dim != operator.dim:
        raise GeoopError(f"the model is {operator.dim}D but the dataset is {dataset.manifest.dim}D", path=data)
    evaluator = Evaluator(operator, batch_size=batch_size)
    metrics = evaluator.evaluate(dataset)
    if operator.trust is not None and operator.trust.calibration is not None:
        metrics["trust"] = score_trust(operator, dataset, confidence, level)
    return metrics
