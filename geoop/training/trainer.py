"""`Trainer`: fits a `FieldOperator` on a `SimulationDataset`, with checkpoints it can resume from exactly."""
from __future__ import annotations

import itertools
import json
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from geoop.data.pyg import Batch
from tqdm import tqdm

from geoop.data.dataset import SimulationDataset
from geoop.errors import GeoopError
from geoop.metrics.forces import ForceCoefficients, ForceSpec, force_errors
from geoop.models.field_operator import FieldOperator
from geoop.training.batching import batch_plan, make_batches, shard_samples
from geoop.training.checkpoint import load_checkpoint, save_checkpoint
from geoop.training.distributed import SINGLE_PROCESS, Context, all_gather, all_max, all_sum, barrier
from geoop.training.gradients import clip_gradient_norm
from geoop.training.losses import field_errors, gaussian_nll, max_errors
from geoop.heap import HeapTrimmer, keep_freed_memory, release_free_memory
from geoop.training.prepared_store import PreparedStore, store_key
from geoop.training.config import TrainConfig
from geoop.training.schedule import SchedulePlan, budget_steps, epoch_plan

log = logging.getLogger(__name__)
CACHES = ("disk", "memory")


#: what each clock reads: this process's CPU time (user + system), wall time, and the two parts of the CPU time
CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.process_time, "wall": time.perf_counter,
                                          "user": lambda: os.times().user, "system": lambda: os.times().system}


class Clock:
    """Seconds of training so far on the clock `kind` (a key of `CLOCKS`), counting the seconds of earlier
    sittings of a resumed run (`offset`)."""

    def __init__(self, kind: str, offset: float = 0.0):
        self.read = CLOCKS[kind]
        self.start, self.offset = self.read(), offset

    def __call__(self) -> float:
        return self.offset + self.read() - self.start


class Evaluator:
    """Batches a dataset through a `FieldOperator` on a device (bf16 autocast on CUDA when `amp`), keeping each
    sample's per-geometry structures (graphs, grids, interpolation weights) on disk (`cache="disk"`, in the
    dataset folder, or under `spare` where that is read-only) or in memory, unless the dataset subsamples
    points anew each epoch; `evaluate` gives per-field errors."""

    def __init__(self, operator: FieldOperator, device: str = "auto", amp: bool = True, batch_size: int = 4,
                 compile: bool = False, context: Context = SINGLE_PROCESS, cache: str = "disk",
                 spare: str | Path | None = None):
        name = device if device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        if name == "cuda" and context.world > 1:
            name = f"cuda:{context.local_rank}"
        self.device, self.amp, self.batch_size, self.context = torch.device(name), amp, batch_size, context
        self.operator = operator.to(self.device)
        self.forward = torch.compile(operator, dynamic=True) if compile else operator
        if cache not in CACHES:
            raise GeoopError(f"unknown cache {cache!r}", fix=f"use train.cache={' or '.join(CACHES)}")
        self.cache, self.spare = cache, None if spare is None else Path(spare)
        self._cache: dict[tuple[int, int], tuple[Any, Any]] = {}
        self._stores: dict[int, PreparedStore] = {}

    def store(self, dataset: SimulationDataset) -> PreparedStore:
        """The on-disk store of `dataset`'s prepared structures for this operator: `<dataset>/.geoop-cache/<key>`,
        or `<spare>/cache/<key>` (the run folder) where the dataset folder is read-only."""
        if id(dataset) not in self._stores:
            key = store_key(self.operator)
            folder = dataset.root / ".geoop-cache"
            if not os.access(folder if folder.exists() else dataset.root, os.W_OK) and self.spare is not None:
                folder = self.spare / "cache"
            self._stores[id(dataset)] = PreparedStore(folder / key)
        return self._stores[id(dataset)]

    def sizes(self, dataset: SimulationDataset) -> list[int]:
        points = {r["index"]: r["n_points"] for r in dataset.manifest.samples}
        return [min(points[i], dataset.subsample or points[i]) for i in dataset.ids]

    def sample(self, dataset: SimulationDataset, i: int) -> tuple[Any, Any]:
        """Sample i of `dataset` and its prepared structures."""
        key = (id(dataset), i)
        if key in self._cache:
            return self._cache[key]
        data = dataset[i]
        prepare = lambda: self.operator.prepare(data, dataset.geometry(i) if self.operator.needs_geometry  # noqa: E731
                                                else None)
        if dataset.subsample is not None:  # new points every epoch: nothing to keep
            return data, prepare()
        if self.cache == "memory":
            self._cache[key] = (data, prepare())
            return self._cache[key]
        store, sample_id, source = self.store(dataset), dataset.ids[i], dataset.files[i]
        prepared = store.get(sample_id, source)
        if prepared is None:
            prepared = prepare()
            try:
                store.put(sample_id, source, prepared)
            except OSError as e:  # a full or read-only disk: keep the structures in memory instead
                log.warning("cannot write the prepared-structure cache %s (%s); keeping them in memory",
                            store.folder, e)
                self.cache = "memory"
                self._cache[key] = (data, prepared)
        return data, prepared

    def forget(self, dataset: SimulationDataset, i: int) -> None:
        """Drop sample i of `dataset` from the in-memory cache (a sample that left a bounded buffer)."""
        self._cache.pop((id(dataset), i), None)

    def batch(self, dataset: SimulationDataset, positions: list[int]) -> tuple[Batch, Any]:
        """Samples `positions` of `dataset` as one PyG `Batch` and their collated structures, on the device."""
        pairs = [self.sample(dataset, i) for i in positions]
        prepared = type(pairs[0][1]).collate([p for _, p in pairs])
        prepared = prepared.to(self.device)
        return Batch.from_data_list([d for d, _ in pairs]).to(self.device), prepared

    def predict(self, data: Batch, prepared: Any, module: Any = None, with_scale: bool = False
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`(N, C_out)` float32 physical predictions for a batch (through `module`, default the operator), and
        `with_scale` their per-point scales (see `FieldOperator.forward`)."""
        amp = self.amp and self.device.type == "cuda"
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
            module = self.forward if module is None else module
            if with_scale:
                pred, scale = module(data.x, prepared, with_scale=True)
                return pred.float(), scale.float()
            return module(data.x, prepared).float()

    def errors(self, pred: torch.Tensor, data: Batch, huber: float | None = None) -> dict[str, torch.Tensor]:
        """`{field: (B,)}` relative L2 errors of each sample of the batch (Huber-robust with `huber`)."""
        return field_errors(pred, data.y, data.y_mask, data.target_weight, data.batch, data.num_graphs,
                            self.operator.target_slices, huber=huber)

    @torch.no_grad()
    def evaluate(self, dataset: SimulationDataset, forces: bool = True) -> dict[str, Any]:
        """Per-field relative L2 (mean, median over samples), the same with prediction and truth clipped to the
        1st-99th percentile range of the training targets (`rel_l2_clipped`), and max error over `dataset`
        (in distributed runs each rank evaluates its shard and the results are gathered). Where the dataset
        has a body (`dataset.forces`) and `forces`, also the force coefficients integrated from the predicted
        surface fields against the same integral of the true ones (`forces`: mean absolute error, R^2 and
        Spearman of cl and cd) and against the solver's own coefficients (`forces_vs_solver`)."""
        if not len(dataset):
            raise GeoopError(f"the {dataset.split!r} split of this dataset is empty: there is nothing to evaluate",
                             path=dataset.root, fix="evaluate another split (--split val), or import the data "
                                                    "again with a test split (--fractions, --test-from)")
        self.operator.eval()
        sizes = self.sizes(dataset)
        mine = shard_samples(sizes, self.context.world)[self.context.rank]
        forces = dataset.forces if forces else None
        force_pairs: list[tuple[Any, Any, Any]] = []  # (predicted, integrated truth, the solver's own) per sample
        rel: dict[str, list[float]] = {n: [] for n in self.operator.target_slices}
        clipped: dict[str, list[float]] = {n: [] for n in self.operator.target_slices}
        worst: dict[str, float] = {n: 0.0 for n in self.operator.target_slices}
        low, high = self.operator.normalizer.y_low, self.operator.normalizer.y_high
        for local in make_batches([sizes[i] for i in mine], self.batch_size, shuffle=False):
            data, prepared = self.batch(dataset, [mine[j] for j in local])
            pred = self.predict(data, prepared)
            for name, e in self.errors(pred, data).items():
                rel[name] += e.tolist()
            truth = data.y
            data.y = torch.minimum(torch.maximum(truth, low), high)
            for name, e in self.errors(torch.minimum(torch.maximum(pred, low), high), data).items():
                clipped[name] += e.tolist()
            data.y = truth
            for name, e in max_errors(pred, data.y, data.y_mask, self.operator.target_slices).items():
                worst[name] = max(worst[name], e)
            if forces is not None:
                force_pairs += self._forces(dataset, [mine[j] for j in local], pred, data.batch, forces)
        gathered = all_gather((rel, clipped, worst), self.context)
        rel = {n: [v for r, _, _ in gathered for v in r[n]] for n in rel}
        clipped = {n: [v for _, c, _ in gathered for v in c[n]] for n in clipped}
        worst = {n: max(w[n] for _, _, w in gathered) for n in worst}
        fields = {n: {"rel_l2": float(np.mean(v)), "rel_l2_median": float(np.median(v)),
                      "rel_l2_clipped": float(np.mean(clipped[n])), "max_error": worst[n]} for n, v in rel.items()}
        out = {"rel_l2": float(np.mean([f["rel_l2"] for f in fields.values()])), "fields": fields,
               "samples": len(dataset), "split": dataset.split}
        if forces is not None:
            pairs = [p for part in all_gather(force_pairs, self.context) for p in part]
            out["forces"] = force_errors([p for p, _, _ in pairs], [t for _, t, _ in pairs])
            solver = [(p, s) for p, _, s in pairs if s is not None]
            if solver:
                out["forces_vs_solver"] = force_errors([p for p, _ in solver], [s for _, s in solver])
        return out

    def _forces(self, dataset: SimulationDataset, positions: list[int], pred: torch.Tensor, batch: torch.Tensor,
                spec: ForceSpec) -> list[tuple[Any, Any, Any]]:
        """(predicted, true, solver's) force coefficients of each sample of a batch: the predicted and the true
        surface fields integrated alike over the body, and the solver's own Cl, Cd where the sample has them."""
        slices = self.operator.target_slices
        out = []
        for k, i in enumerate(positions):
            g = dataset.geometry(i)
            mine = pred[batch == k].double().cpu().numpy()
            values = {f: mine[:, slices[f]].squeeze(1) if slices[f].stop - slices[f].start == 1 else mine[:, slices[f]]
                      for f in spec.fields_needed()}
            solver = None
            if {"cl", "cd"} <= set(g.global_data):
                solver = ForceCoefficients(cd=float(g.global_data["cd"]), cl=float(g.global_data["cl"]),
                                           cd_pressure=float("nan"), cd_friction=float("nan"),
                                           cl_pressure=float("nan"), cl_friction=float("nan"), force=())
            out.append((spec.of(g, values), spec.of(g), solver))
        return out


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
        super().__init__(operator, config.device, config.amp, config.batch_size, config.compile, context,
                         config.cache, out)
        self.train_set, self.val_set = train_set, val_set
        self.config, self.out, self.data_hash = config, Path(out), data_hash
        self.n_shards = config.shards or context.world
        if self.n_shards < context.world:
            raise GeoopError(f"train.shards={self.n_shards} is fewer than the {context.world} processes",
                             fix="leave train.shards unset, or make it at least the number of processes")
        self.my_shards = [k for k in range(self.n_shards) if k % context.world == context.rank]
        self.trimmer = HeapTrimmer()  # called every step: resident memory stays flat over steps of different sizes
        self.train_forward = self.forward
        if context.world > 1:  # gradients are averaged across ranks; parameters start from rank 0's
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            ddp = DistributedDataParallel(operator, device_ids=ids, broadcast_buffers=False)
            self.train_forward = torch.compile(ddp, dynamic=True) if config.compile else ddp

    # -- training ----------------------------------------------------------------------------------------
    def epoch_plan(self, epoch: int) -> list[list[list[int]]]:
        """The steps of epoch `epoch`: per step, per shard, the training-sample indices it takes (the same for a
        given seed and epoch on every rank; see `batch_plan`)."""
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
        huber = self.config.huber_delta if self.config.loss == "huber" else None
        if self.operator.uncertainty == "variance":
            pred, scale = self.predict(data, prepared, self.train_forward, with_scale=True)
            errors = self.errors(pred, data, huber)
            nll = gaussian_nll(pred.detach(), scale, data.y, data.y_mask, data.target_weight, data.batch,
                               data.num_graphs, self.operator.target_slices)
            errors = {k: e + self.config.uncertainty_weight * nll[k] for k, e in errors.items()}
        else:
            errors = self.errors(self.predict(data, prepared, self.train_forward), data, huber)
        local = torch.stack(list(errors.values())).sum() * (0.0 if idle else 1.0)
        value = all_sum(float(local.detach()), self.context) / count
        if not math.isfinite(value):
            raise GeoopError(f"the loss became {value}",
                             fix="lower train.lr or raise train.grad_clip; check the data for outliers")
        return local * (self.context.world / count), value

    def _optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        c = self.config
        opt = torch.optim.AdamW(self.operator.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        if c.budget is None:
            total = sum(len(self.epoch_plan(e)) for e in range(int(c.max_epochs)))
            self.plan = epoch_plan(c.schedule, total)
        else:  # the first epoch warms up; its speed fixes the rest of the plan (see `fit_plan`)
            self.plan = SchedulePlan(c.schedule, len(self.epoch_plan(0)), None)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: self.plan.factor(step))
        return opt, sched

    # -- checkpoints -------------------------------------------------------------------------------------
    def _meta(self, progress: Progress) -> dict[str, Any]:
        return {"operator": self.operator.config(), "train": asdict(self.config), "data_hash": self.data_hash,
                "epoch": progress.epoch, "history": progress.history, "best_val": progress.best,
                "bad_epochs": progress.bad_epochs, "plan": self.plan.state()}

    def resume(self) -> Progress:
        """Load `out/last.safetensors` (weights, optimizer, schedule, plan) when there is one; refuse a folder
        that holds another model's or dataset's run, or one with other plan settings."""
        path = self.out / "last.safetensors"
        if not path.is_file():
            return Progress()
        weights, meta, extra = load_checkpoint(path)
        if meta["operator"]["model"] != self.operator.model_config or meta["data_hash"] != self.data_hash:
            raise GeoopError("this folder holds a run of another model or dataset; not overwriting it",
                             path=self.out, fix="choose a new output folder, or delete this one to start over")
        before, now, default = meta["train"], asdict(self.config), asdict(TrainConfig())
        changed = [k for k in TrainConfig.PLAN_KEYS if before.get(k, default[k]) != now[k]]
        if changed:
            was = ", ".join(f"train.{k}={before.get(k)}" for k in changed)
            raise GeoopError(f"this folder holds a run with other training settings ({was}); resuming it with "
                             "new ones would not follow any one plan", path=self.out,
                             fix=f"resume with {was}, or train into a new folder (--out) to use the new settings")
        self.operator.load_state_dict(weights)
        self.plan = SchedulePlan(**meta["plan"])
        self.opt.load_state_dict(extra["optimizer"])
        self.sched.load_state_dict(extra["scheduler"])
        log.info("resuming %s after epoch %d", self.out, meta["epoch"])
        history = meta["history"]
        return Progress(meta["epoch"], sum(h["steps"] for h in history), history, meta["best_val"],
                        meta["bad_epochs"])

    def save(self, progress: Progress, improved: bool) -> None:
        """Write `last.safetensors` (to resume from), `model.safetensors` when the model `improved` (or
        without validation data) and `metrics.jsonl`."""
        meta = self._meta(progress)
        if improved or self.val_set is None:
            best = {k: meta[k] for k in ("operator", "data_hash", "epoch")} | {"metrics": progress.history[-1]}
            save_checkpoint(self.out / "model.safetensors", self.operator.state_dict(), best)
        save_checkpoint(self.out / "last.safetensors", self.operator.state_dict(), meta,
                        {"optimizer": self.opt.state_dict(), "scheduler": self.sched.state_dict()}, json_twin=False)
        self._log(progress.history)

    def _log(self, history: list[dict]) -> None:
        lines = "".join(json.dumps(h) + "\n" for h in history)
        tmp = self.out / ".metrics.jsonl.tmp"
        tmp.write_text(lines)
        tmp.replace(self.out / "metrics.jsonl")

    def _warm_caches(self) -> None:
        """Build every cached sample structure (graphs, grids, interpolation weights) of this rank's training
        shards and validation share before the first step, so the first epoch measures steady-state speed."""
        if self.train_set.subsample is not None:
            return
        todo = [(self.train_set, i) for k in self.my_shards for i in self.train_set_shards[k]]
        if self.val_set is not None and len(self.val_set):
            mine = shard_samples(self.sizes(self.val_set), self.context.world)[self.context.rank]
            todo += [(self.val_set, i) for i in mine]
        show = self.config.progress and self.context.is_main
        for done, (dataset, i) in enumerate(tqdm(todo, desc="prepare", unit="sample", disable=not show,
                                                 leave=False)):
            self.sample(dataset, i)
            self._check_preparation_budget(done + 1, len(todo))

    def _check_preparation_budget(self, done: int, total: int) -> None:
        """Stop a budgeted run whose preparation alone spends the budget (it counts against it): a typed error
        saying how far it got, instead of preparing on past the stopping rule. Read on this rank's own clock
        (no collective: ranks prepare different numbers of samples)."""
        c = self.config
        spent = self.clocks[c.clock]() if c.budget is not None else 0.0
        if c.budget is not None and spent >= c.budget and done < total:
            raise GeoopError(f"the budget of {c.budget:g} {c.clock} seconds was spent preparing the samples' "
                             f"structures ({done} of {total} done in {spent:.0f} s), before the first training step",
                             fix="raise train.budget, train on fewer or smaller samples (data.subsample), or choose "
                                 "model options that prepare less (a coarser latent grid)")

    def _spent(self, clock: Clock) -> float:
        """Seconds on the budget clock, the same on every rank (the slowest rank's)."""
        return all_max(clock(), self.context)

    # -- the pieces of `fit` -----------------------------------------------------------------------------
    def start(self) -> Progress:
        """Everything before the first step: the output folder, the seed, the shards, the optimizer and
        schedule, an interrupted run's state (`resume`), the clocks (`clocks`, which count the preparation)
        and every sample's prepared structures; returns where the run stands. From here on the process's
        heap keeps what a step frees for the next (`geoop.heap.keep_freed_memory`)."""
        keep_freed_memory()
        self.out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(self.config.seed)
        self.train_set_shards = shard_samples(self.sizes(self.train_set), self.n_shards)
        if not all(self.train_set_shards):
            raise GeoopError(f"{len(self.train_set)} training samples cannot fill {self.n_shards} shards",
                             fix="use fewer processes (or a smaller train.shards), or more training samples")
        self.opt, self.sched = self._optimizer()
        progress = self.resume()
        last = progress.history[-1] if progress.history else {}
        self.clocks = {kind: Clock(kind, last.get(f"{kind}_seconds", 0.0)) for kind in CLOCKS}
        self._warm_caches()
        return progress

    def train_step(self, batch: list[list[int]]) -> float:
        """One optimizer step on `batch` (sample positions per shard), then the heap check; returns the global
        loss."""
        loss, value = self._step_loss(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.config.grad_clip:
            clip_gradient_norm(self.operator.parameters(), self.config.grad_clip)
        self.opt.step()
        self.sched.step()
        self.trimmer()
        return value

    def train_epoch(self, epoch: int, progress: Progress, budget_clock: Clock, bar: tqdm) -> tuple[list[float], bool]:
        """The steps of `epoch` until it, the plan or the budget ends; returns the step losses and whether the
        budget ran out."""
        c = self.config
        self.train_set.set_epoch(epoch)
        self.operator.train()
        losses: list[float] = []
        for batch in self.epoch_plan(epoch):
            if self.plan.total is not None and progress.step >= self.plan.total:
                break
            if c.budget is not None and self._spent(budget_clock) >= c.budget:
                return losses, True
            value = self.train_step(batch)
            progress.step += 1
            losses.append(value)
            bar.update()
            bar.set_postfix(epoch=epoch + 1, loss=f"{value:.4f}")
        return losses, False

    def validate(self) -> dict[str, Any]:
        """Validation errors for the epoch's record ({} without validation data); symmetry-averaged models
        make one pass per check."""
        if self.val_set is None or not len(self.val_set):
            return {}
        with self.operator.evaluation("single"):
            val = self.evaluate(self.val_set, forces=False)
        return {"val_rel_l2": val["rel_l2"], "val": {n: f["rel_l2"] for n, f in val["fields"].items()}}

    def fit_plan(self, epoch: int, step: int, seconds_per_step: float, spent: float) -> None:
        """At a budgeted run's epoch end: the steps the rest of the budget affords at `seconds_per_step` (measured
        over this process's epochs so far, validation included), with `epochs` too whichever ends first. The
        warm-up epoch fixes the plan; later epochs refit it (`SchedulePlan.refit`)."""
        c = self.config
        total = budget_steps(step, spent, c.budget, seconds_per_step)
        if c.epochs is not None:
            total = min(total, step + sum(len(self.epoch_plan(e)) for e in range(epoch + 1, c.epochs)))
        if self.plan.total is None:
            self.plan.total = total
            log.info("budget %.0f s: %d steps planned (%.3f s each, measured in epoch 1)", c.budget, total,
                     seconds_per_step)
        else:
            self.plan.refit(step, total)

    def _stops_before(self, epoch: int, progress: Progress) -> bool:
        c = self.config
        if epoch >= c.max_epochs or (self.plan.total is not None and progress.step >= self.plan.total):
            return True
        if c.patience is not None and progress.bad_epochs >= c.patience:
            log.info("early stop: no better validation error for %d epochs", progress.bad_epochs)
            return True
        return False

    def fit(self) -> list[dict]:
        """Train (resuming from `out/last.safetensors` when present) until `config.epochs` or
        `config.budget` ends; returns the history. In a distributed run every rank calls this; rank 0 alone
        writes checkpoints and logs."""
        c, main = self.config, self.context.is_main
        progress = self.start()
        clocks = self.clocks
        budget_clock = clocks[c.clock]
        writer = _tensorboard(self.out) if main else None
        planned = self.plan.total if c.budget is not None else \
            progress.step + sum(len(self.epoch_plan(e)) for e in range(progress.epoch, int(c.max_epochs)))
        bar = tqdm(total=planned, initial=progress.step, desc="train", unit="step",
                   disable=not (c.progress and main))
        run_start, run_steps = budget_clock(), progress.step  # this process's speed refits a budgeted plan
        for epoch in itertools.count(progress.epoch):
            if self._stops_before(epoch, progress):
                break
            t0 = time.perf_counter()
            losses, spent_out = self.train_epoch(epoch, progress, budget_clock, bar)
            if not losses:
                break
            record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "steps": len(losses),
                      "lr": float(self.sched.get_last_lr()[0]), "seconds": time.perf_counter() - t0,
                      **self.validate()}
            if "val_rel_l2" in record:
                bar.set_postfix(epoch=epoch + 1, loss=f"{record['train_loss']:.4f}", val=f"{record['val_rel_l2']:.4f}")
            if c.budget is not None and not spent_out:  # fix the plan after the warm-up epoch, then refit it
                spent = self._spent(budget_clock)
                self.fit_plan(epoch, progress.step, (spent - run_start) / (progress.step - run_steps), spent)
                bar.total = self.plan.total
            record.update({f"{kind}_seconds": clock() for kind, clock in clocks.items()})
            improved = progress.record(record)
            if main:
                self.save(progress, improved)
            if writer is not None:
                for k, v in record.items():
                    if isinstance(v, float):
                        writer.add_scalar(k, v, epoch + 1)
            if spent_out:
                break
        bar.close()
        release_free_memory()
        if writer is not None:
            writer.close()
        if not progress.history:
            raise GeoopError(f"the budget of {c.budget:g} {c.clock} seconds was spent before the first training "
                             f"step (preparing the samples took {self._spent(budget_clock):.0f} s)",
                             fix="raise train.budget, or train on fewer samples")
        barrier(self.context)  # the others wait until rank 0's checkpoints are on disk
        return progress.history


@dataclass
class Progress:
    """Where a run stands, as its checkpoint records it: epochs and steps done, the per-epoch history, the best
    score (validation error, else training loss) and the epochs since it last improved."""

    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    best: float = math.inf
    bad_epochs: int = 0

    def record(self, epoch_record: dict[str, Any]) -> bool:
        """Append an epoch's record; returns whether it improved on the best score."""
        self.history.append(epoch_record)
        self.epoch = epoch_record["epoch"]
        score = epoch_record.get("val_rel_l2", epoch_record["train_loss"])
        improved = score < self.best
        self.best, self.bad_epochs = (score, 0) if improved else (self.best, self.bad_epochs + 1)
        return improved


def _tensorboard(out: Path) -> Any:
    """A TensorBoard writer when tensorboard is installed, else None (metrics.jsonl is always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(out / "tensorboard"))
