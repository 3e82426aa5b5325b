"""`Trainer`: fits a `FieldOperator` on a `SimulationDataset`, with checkpoints it can resume from exactly."""
from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from geoop.data.pyg import Batch
from tqdm import tqdm

from geoop.data.dataset import SimulationDataset
from geoop.errors import GeoopError
from geoop.models.field_operator import FieldOperator
from geoop.training.batching import batch_plan, make_batches, shard_samples
from geoop.training.checkpoint import load_checkpoint, save_checkpoint
from geoop.training.distributed import SINGLE_PROCESS, Context, all_gather, all_sum, barrier
from geoop.training.losses import field_errors, max_errors

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How to train. `max_points` packs batches by point count (up to `batch_size` samples each);
    `schedule`: "onecycle", "cosine" or "constant" (stepped per batch); `patience`: epochs without a better
    validation error before stopping early (None: never); `amp`: bf16 autocast on CUDA; `compile`:
    `torch.compile` the model; `device`: "auto" (CUDA when available), "cpu", "cuda", ...
    `shards`: how the training set is dealt for data parallelism (default: one shard per process; batch_size
    and max_points are per shard); fix it to replay a run on another number of processes. `dist_timeout`:
    seconds a collective may wait for a lost rank before the job fails."""

    epochs: int = 50
    batch_size: int = 4
    max_points: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: str = "onecycle"
    grad_clip: float | None = 1.0
    seed: int = 0
    patience: int | None = None
    amp: bool = True
    compile: bool = False
    device: str = "auto"
    progress: bool = True
    shards: int | None = None
    dist_timeout: float = 300.0

    def __post_init__(self):  # YAML reads 1e-3 (no dot) as a string
        self.lr, self.weight_decay = float(self.lr), float(self.weight_decay)
        self.grad_clip = None if self.grad_clip is None else float(self.grad_clip)


class Evaluator:
    """Batches a dataset through a `FieldOperator` on a device (bf16 autocast on CUDA when `amp`), caching each
    sample's per-geometry structures (graphs, grids, interpolation weights) unless the dataset subsamples points
    anew each epoch; `evaluate` gives per-field errors."""

    def __init__(self, operator: FieldOperator, device: str = "auto", amp: bool = True, batch_size: int = 4,
                 compile: bool = False, context: Context = SINGLE_PROCESS):
        name = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if name == "cuda" and context.world > 1:
            name = f"cuda:{context.local_rank}"
        self.device, self.amp, self.batch_size, self.context = torch.device(name), amp, batch_size, context
        self.operator = operator.to(self.device)
        self.forward = torch.compile(operator, dynamic=True) if compile else operator
        self._cache: dict[tuple[int, int], tuple[Any, Any]] = {}

    def sizes(self, dataset: SimulationDataset) -> list[int]:
        points = {r["index"]: r["n_points"] for r in dataset.manifest["samples"]}
        return [min(points[i], dataset.subsample or points[i]) for i in dataset.ids]

    def sample(self, dataset: SimulationDataset, i: int) -> tuple[Any, Any]:
        """Sample i of `dataset` and its prepared structures."""
        key = (id(dataset), i)
        if key in self._cache:
            return self._cache[key]
        data = dataset[i]
        prepared = self.operator.prepare(data, dataset.geometry(i) if self.operator.needs_geometry else None)
        if dataset.subsample is None:
            self._cache[key] = (data, prepared)
        return data, prepared

    def batch(self, dataset: SimulationDataset, positions: list[int]) -> tuple[Batch, Any]:
        """Samples `positions` of `dataset` as one PyG `Batch` and their collated structures, on the device."""
        pairs = [self.sample(dataset, i) for i in positions]
        prepared = type(pairs[0][1]).collate([p for _, p in pairs])
        prepared = prepared.to(self.device) if hasattr(prepared, "to") else prepared
        return Batch.from_data_list([d for d, _ in pairs]).to(self.device), prepared

    def predict(self, data: Batch, prepared: Any, module: Any = None) -> torch.Tensor:
        """`(N, C_out)` float32 physical predictions for a batch (through `module`, default the operator)."""
        amp = self.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            return (self.forward if module is None else module)(data.x, prepared).float()

    def errors(self, pred: torch.Tensor, data: Batch) -> dict[str, torch.Tensor]:
        """`{field: (B,)}` relative L2 errors of each sample of the batch."""
        return field_errors(pred, data.y, data.y_mask, data.weight, data.batch, data.num_graphs,
                            self.operator.target_slices)

    @torch.no_grad()
    def evaluate(self, dataset: SimulationDataset) -> dict[str, Any]:
        """Per-field relative L2 (mean, median over samples) and max error over `dataset` (in distributed runs
        each rank evaluates its shard and the results are gathered)."""
        self.operator.eval()
        sizes = self.sizes(dataset)
        mine = shard_samples(sizes, self.context.world)[self.context.rank]
        rel: dict[str, list[float]] = {n: [] for n in self.operator.target_slices}
        worst: dict[str, float] = {n: 0.0 for n in self.operator.target_slices}
        for local in make_batches([sizes[i] for i in mine], self.batch_size, shuffle=False):
            data, prepared = self.batch(dataset, [mine[j] for j in local])
            pred = self.predict(data, prepared)
            for name, e in self.errors(pred, data).items():
                rel[name] += e.tolist()
            for name, e in max_errors(pred, data.y, data.y_mask, self.operator.target_slices).items():
                worst[name] = max(worst[name], e)
        gathered = all_gather((rel, worst), self.context)
        rel = {n: [v for r, _ in gathered for v in r[n]] for n in rel}
        worst = {n: max(w[n] for _, w in gathered) for n in worst}
        fields = {n: {"rel_l2": float(np.mean(v)), "rel_l2_median": float(np.median(v)), "max_error": worst[n]}
                  for n, v in rel.items()}
        return {"rel_l2": float(np.mean([f["rel_l2"] for f in fields.values()])), "fields": fields,
                "samples": len(dataset)}


class Trainer(Evaluator):
    """Train `operator` on `train_set` (validating on `val_set`), writing into `out`:

    - `last.safetensors`: weights, optimizer and schedule after the latest epoch (what `fit` resumes from);
    - `model.safetensors` + `model.json`: the best model so far (lowest validation error; the last one without
      validation data), loadable with `geoop.load_model`;
    - `metrics.jsonl`: one line per epoch (train loss, validation errors per field, learning rate, seconds).

    Batches are drawn from (seed, epoch), so a resumed run replays exactly the batches the killed run would
    have seen."""

    def __init__(self, operator: FieldOperator, train_set: SimulationDataset, val_set: SimulationDataset | None,
                 config: TrainConfig, out: str | Path, data_hash: str = "", context: Context = SINGLE_PROCESS):
        if config.schedule not in ("onecycle", "cosine", "constant"):
            raise GeoopError(f"unknown schedule {config.schedule!r}", fix="use onecycle, cosine or constant")
        super().__init__(operator, config.device, config.amp, config.batch_size, config.compile, context)
        self.train_set, self.val_set = train_set, val_set
        self.config, self.out, self.data_hash = config, Path(out), data_hash
        self.n_shards = config.shards or context.world
        if self.n_shards < context.world:
            raise GeoopError(f"train.shards={self.n_shards} is fewer than the {context.world} processes",
                             fix="leave train.shards unset, or make it at least the number of processes")
        self.my_shards = [k for k in range(self.n_shards) if k % context.world == context.rank]
        self.train_forward = self.forward
        if context.world > 1:  # gradients are averaged across ranks; parameters start from rank 0's
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(operator, device_ids=ids, broadcast_buffers=False)
            self.train_forward = torch.compile(ddp, dynamic=True) if config.compile else ddp

    # -- training ----------------------------------------------------------------------------------------
    def _epoch_plan(self, epoch: int) -> list[list[list[int]]]:
        c = self.config
        return batch_plan(self.sizes(self.train_set), c.batch_size, c.max_points, c.seed, epoch, self.n_shards)

    def _step_loss(self, step: list[list[int]]) -> tuple[torch.Tensor, float]:
        """This rank's share of the step's loss, scaled so that the gradients averaged over ranks are those of
        the mean relative L2 over every sample and field of the global batch; and the global loss value."""
        mine = [i for k in self.my_shards for i in step[k]]
        count = sum(len(p) for p in step) * len(self.operator.target_slices)
        idle = not mine
        if idle:  # a rank whose shard ran out still joins the gradient all-reduce, contributing zero
            mine = [next(i for k in self.my_shards for i in self.train_set_shards[k])]
        data, prepared = self.batch(self.train_set, mine)
        errors = self.errors(self.predict(data, prepared, self.train_forward), data)
        local = torch.stack(list(errors.values())).sum() * (0.0 if idle else 1.0)
        value = all_sum(float(local.detach()), self.context) / count
        if not math.isfinite(value):
            raise GeoopError(f"the loss became {value}",
                             fix="lower train.lr or raise train.grad_clip; check the data for outliers")
        return local * (self.context.world / count), value

    def _optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        c = self.config
        opt = torch.optim.AdamW(self.operator.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        total = max(1, sum(len(self._epoch_plan(e)) for e in range(c.epochs)))
        if c.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=c.lr, total_steps=total)
        elif c.schedule == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        else:
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
        return opt, sched

    def _meta(self, epoch: int, history: list[dict], best: float, bad_epochs: int) -> dict[str, Any]:
        return {"operator": self.operator.config(), "train": asdict(self.config), "data_hash": self.data_hash,
                "epoch": epoch, "history": history, "best_val": best, "bad_epochs": bad_epochs}

    def _resume(self, opt, sched) -> tuple[int, list[dict], float, int]:
        path = self.out / "last.safetensors"
        if not path.is_file():
            return 0, [], math.inf, 0
        weights, meta, extra = load_checkpoint(path)
        if meta["operator"]["model"] != self.operator.model_config or meta["data_hash"] != self.data_hash:
            raise GeoopError("this folder holds a run of another model or dataset; not overwriting it",
                             path=self.out, fix="choose a new output folder, or delete this one to start over")
        self.operator.load_state_dict(weights)
        opt.load_state_dict(extra["optimizer"])
        sched.load_state_dict(extra["scheduler"])
        log.info("resuming %s after epoch %d", self.out, meta["epoch"])
        return meta["epoch"], meta["history"], meta["best_val"], meta["bad_epochs"]

    def _save(self, opt, sched, epoch: int, history: list[dict], best: float, bad_epochs: int,
              improved: bool) -> None:
        meta = self._meta(epoch, history, best, bad_epochs)
        if improved or self.val_set is None:
            save_checkpoint(self.out / "model.safetensors", self.operator.state_dict(),
                            {k: meta[k] for k in ("operator", "data_hash", "epoch")} | {"metrics": history[-1]})
        save_checkpoint(self.out / "last.safetensors", self.operator.state_dict(), meta,
                        {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, json_twin=False)
        self._log(history)

    def _log(self, history: list[dict]) -> None:
        lines = "".join(json.dumps(h) + "\n" for h in history)
        tmp = self.out / ".metrics.jsonl.tmp"
        tmp.write_text(lines)
        tmp.replace(self.out / "metrics.jsonl")

    def fit(self) -> list[dict]:
        """Train for `config.epochs` (resuming from `out/last.safetensors` when present); returns the history.
        In a distributed run every rank calls this; rank 0 alone writes checkpoints and logs."""
        c, main = self.config, self.context.is_main
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(c.seed)
        self.train_set_shards = shard_samples(self.sizes(self.train_set), self.n_shards)
        if not all(self.train_set_shards):
            raise GeoopError(f"{len(self.train_set)} training samples cannot fill {self.n_shards} shards",
                             fix="use fewer processes (or a smaller train.shards), or more training samples")
        opt, sched = self._optimizer()
        start, history, best, bad_epochs = self._resume(opt, sched)
        steps_done = sum(h["steps"] for h in history)
        total = steps_done + sum(len(self._epoch_plan(e)) for e in range(start, c.epochs))
        writer = _tensorboard(self.out) if main else None
        bar = tqdm(total=total, initial=steps_done, desc="train", unit="step", disable=not (c.progress and main))
        for epoch in range(start, c.epochs):
            if c.patience is not None and bad_epochs >= c.patience:
                log.info("early stop: no better validation error for %d epochs", bad_epochs)
                break
            t0 = time.perf_counter()
            self.train_set.set_epoch(epoch)
            self.operator.train()
            losses = []
            for step in self._epoch_plan(epoch):
                loss, value = self._step_loss(step)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if c.grad_clip:
                    torch.nn.utils.clip_grad_norm_(self.operator.parameters(), c.grad_clip)
                opt.step()
                sched.step()
                losses.append(value)
                bar.update()
                bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
            record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "steps": len(losses),
                      "lr": float(sched.get_last_lr()[0]), "seconds": time.perf_counter() - t0}
            if self.val_set is not None and len(self.val_set):
                val = self.evaluate(self.val_set)
                record["val_rel_l2"] = val["rel_l2"]
                record["val"] = {n: f["rel_l2"] for n, f in val["fields"].items()}
                bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.4f}", val=f"{val['rel_l2']:.4f}")
            history.append(record)
            score = record.get("val_rel_l2", record["train_loss"])
            improved = score < best
            best, bad_epochs = (score, 0) if improved else (best, bad_epochs + 1)
            if main:
                self._save(opt, sched, epoch + 1, history, best, bad_epochs, improved)
            if writer is not None:
                for k, v in record.items():
                    if isinstance(v, float):
                        writer.add_scalar(k, v, epoch + 1)
        bar.close()
        if writer is not None:
            writer.close()
        barrier(self.context)  # the others wait until rank 0's checkpoints are on disk
        return history


def _tensorboard(out: Path) -> Any:
    """A TensorBoard writer when tensorboard is installed, else None (metrics.jsonl is always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))
