"""Training while the solver runs (`geoop train --online FAMILY`; the seed paper "Training deep surrogate models
with large scale online learning"): solver workers (`SolverPool`) make samples into the dataset folder while
the trainer draws its batches from a bounded buffer of the samples made so far, so neither waits for the other.

The run, on its wall clock (`train.budget` seconds, the solver's time included):
1. the first `online.val` good samples (random designs) are made and fixed as the validation split; one worker
   more than `online.workers` makes them, and the first `online.min_samples` training samples, while no
   trainer runs yet;
2. the model is built and normalised on those training samples; from then on every step draws a batch from
   the buffer (`ReplayBuffer`: FIFO or reservoir) and every new sample joins it as it comes, while each next
   design is chosen as `online.select` says (see `geoop.training.selection`);
3. every `online.validate_every` seconds: validation, checkpoints (`model.safetensors`, the best, is what
   uncertainty selection scores candidates with) and a record in `metrics.jsonl` with the samples made;
4. at the budget's end the workers stop (a sample being made is dropped), the dataset folder's manifest is
   completed (train and val splits: a dataset like any other) and the model is calibrated on the validation
   split as `geoop train` does.

Every sample is written to the dataset folder as it is made (atomically), so a killed run loses only the
samples being made and the steps since its last record: the same command resumes it (the buffer is refilled
with the newest training samples, the clock goes on from the last record)."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from geoop.data.dataset import SimulationDataset
from geoop.data.families import FAMILIES, Family, get_family
from geoop.data.families.command import CommandSolver
from geoop.data.generation import check_same, complete, new_manifest, records_from_files, require_solvers
from geoop.data.manifest import MANIFEST, read_manifest
from geoop.data.solver_pool import SolverPool, Task
from geoop.errors import GeoopError
from geoop.io import load
from geoop.models.field_operator import FieldOperator
from geoop.training.batching import make_batches
from geoop.training.calibration import calibrate_checkpoint
from geoop.training.checkpoint import load_checkpoint
from geoop.training.config import OnlineConfig, RunConfig
from geoop.training.schedule import epoch_plan
from geoop.training.selection import farthest
from geoop.training.trainer import Clock, Trainer

log = logging.getLogger(__name__)
#: the learning-rate plan runs over this many equal slices of the wall budget (a time-driven schedule: how many
#: steps fit is not known while the solver shares the machine)
PLAN_SLICES = 1000


class ReplayBuffer:
    """The training samples a trainer draws from: at most `capacity` sample positions. "fifo" keeps the newest;
    "reservoir" keeps a uniform random subset of every sample offered so far (Vitter's algorithm R: the n-th
    enters with probability capacity / n, in place of a random one)."""

    def __init__(self, capacity: int, kind: str, seed: int):
        self.capacity, self.kind = capacity, kind
        self.positions: list[int] = []
        self.offered = 0
        self.rng = np.random.default_rng([seed, 1])

    def add(self, position: int) -> int | None:
        """Offer a sample; returns the position that leaves the buffer (it may be the new one), or None."""
        self.offered += 1
        if len(self.positions) < self.capacity:
            self.positions.append(position)
            return None
        if self.kind == "fifo":
            self.positions.append(position)
            return self.positions.pop(0)
        j = int(self.rng.integers(self.offered))
        if j >= self.capacity:
            return position
        out, self.positions[j] = self.positions[j], position
        return out


class OnlineDataset:
    """The dataset folder an online run writes: its records, the validation samples (the first `val` good ones),
    failures; `save` rewrites the manifest (atomically) with the train and val splits as they stand. A folder
    from an earlier sitting is taken up (and one made with other settings refused); sample files the manifest
    missed (a run killed between the two writes) are recovered."""

    def __init__(self, root: Path, family: Family, seed: int, options: dict[str, Any], val: int):
        self.root, self.family, self.val_size = root, family, val
        (root / "samples").mkdir(parents=True, exist_ok=True)
        self.manifest = new_manifest(family, seed, options, None)
        self.records: dict[int, dict] = {}
        self.failures: dict[int, str] = {}
        self.val: list[int] = []
        self.val_slots: set[int] = set()  # indices made for the validation split (random designs)
        if (root / MANIFEST).exists():
            old = read_manifest(root)
            check_same(old, family, seed, options, root)
            if old.solver != family.solver:
                raise GeoopError(f"this folder holds samples of another solver ({old.solver})", path=root,
                                 fix="choose another data.root")
            self.manifest.dim, self.manifest.fields = old.dim, old.fields
            self.records = {r["index"]: r for r in old.samples if (root / r["file"]).is_file()}
            self.failures = {f["index"]: f["reason"] for f in old.failures}
            self.val = [i for i in old.splits.get("val", []) if i in self.records]
            self.val_slots = set(self.val)
        self.recover()

    def recover(self) -> None:
        """File the sample files the manifest does not list (written just before a run was killed or stopped)."""
        for _, record in sorted(records_from_files(self.root, skip=self.records).items()):
            self.add(record)

    def good(self, index: int) -> bool:
        """Whether sample `index` is made and its solver converged."""
        return index in self.records and self.records[index]["values"].get("converged", 1.0) != 0.0

    @property
    def train(self) -> list[int]:
        """The good samples outside the validation split, in the order they were made."""
        return [i for i in self.records if i not in self.val and self.good(i)]

    def add(self, record: dict[str, Any]) -> str | None:
        """File a worker's report; returns the split the sample joins ("val", "train") or None (a failure, or
        an unconverged solve)."""
        index = record["index"]
        if "error" in record:
            self.failures[index] = record["error"]
            return None
        self.records[index] = {k: record[k] for k in ("index", "file", "n_points", "seconds", "values")}
        for key in ("design", "scores"):  # the chosen design and, with uncertainty selection, every candidate's
            if record.get(key) is not None:
                self.records[index][key] = record[key]
        if not self.good(index):
            return None
        if not self.manifest.dim:
            self._learn_fields(self.root / record["file"])
        if index in self.val_slots and len(self.val) < self.val_size:
            self.val.append(index)
            return "val"
        return "train"

    def wants_val(self, busy: Collection[int]) -> bool:
        """Whether the next sample is to be a validation one: fewer validation samples made or being made
        (`busy`) than the split holds. So the validation split is the first `val` good samples in index order,
        the same designs in every run of a seed."""
        return len(self.val) + len(self.val_slots & set(busy)) < self.val_size

    def _learn_fields(self, path: Path) -> None:
        """A user command's dimension and field components, which only its first result says."""
        sample = load(path)
        self.manifest.dim = sample.dim
        for role in ("inputs", "targets"):
            for name, spec in self.manifest.fields[role].items():
                spec["components"] = int(np.prod(sample.point_data[name].shape[1:], dtype=int))

    def next_index(self, busy: set[int]) -> int:
        """The smallest index neither made, failed nor `busy`."""
        index = 0
        while index in self.records or index in self.failures or index in busy:
            index += 1
        return index

    def designs(self) -> list[dict[str, float]]:
        """The design of every sample made (from its recorded parameters)."""
        keys = self.family.designs.ranges
        return [{k: r["values"][k] for k in keys} for r in self.records.values() if all(k in r["values"] for k in keys)]

    def save(self, done: bool = False) -> None:
        """Rewrite the manifest; `done`: the run is over, so the dataset is complete (statistics included)."""
        m = self.manifest
        m.samples = [self.records[i] for i in sorted(self.records)]
        m.failures = [{"index": i, "reason": r} for i, r in sorted(self.failures.items())]
        m.unconverged = [i for i in sorted(self.records) if not self.good(i)]
        m.splits = {"train": sorted(self.train), "val": sorted(self.val), "test": []}
        m.n_requested = len(self.records)
        if done and m.splits["train"]:
            complete(m, self.root)
        else:
            m.status = "incomplete"
        m.write(self.root)


class OnlineTrainer(Trainer):
    """A `Trainer` whose training set grows while it trains: `fit` takes steps from the buffer until the wall
    budget ends, filing the solver pool's samples between steps and keeping its queue full."""

    def __init__(self, operator: FieldOperator, train_set: SimulationDataset, val_set: SimulationDataset,
                 config: RunConfig, data: OnlineDataset, pool: SolverPool, wall: Clock):
        train = dataclasses.replace(config.train, cache="memory")  # the buffer bounds what is kept
        super().__init__(operator, train_set, val_set, train, config.out, run_key(config))
        self.online, self.data, self.pool, self.wall = config.online, data, pool, wall
        self.buffer = ReplayBuffer(self.online.buffer_size, self.online.buffer, train.seed)
        self.position = {index: k for k, index in enumerate(train_set.ids)}
        for index in train_set.ids[-self.online.buffer_size:]:  # a resumed run: the newest
            self.buffer.add(self.position[index])
        self.buffer.offered = len(train_set.ids)
        self.solver_idle = 0.0

    def _warm_caches(self) -> None:
        """Prepare the buffer's samples and the validation split before the first step."""
        todo = [(self.train_set, p) for p in self.buffer.positions] + [(self.val_set, i) for i in
                                                                       range(len(self.val_set))]
        for dataset, i in tqdm(todo, desc="prepare", unit="sample", disable=not self.config.progress, leave=False):
            self.sample(dataset, i)

    def sizes(self, dataset: SimulationDataset) -> list[int]:
        return [self.data.records[i]["n_points"] for i in dataset.ids]

    def _optimizer(self) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        """AdamW with the configured plan over slices of the wall budget (the rate follows the clock)."""
        c = self.config
        opt = torch.optim.AdamW(self.operator.parameters(), lr=c.lr, weight_decay=c.weight_decay)
        self.plan = epoch_plan(c.schedule, PLAN_SLICES)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda _: self.plan.factor(int(PLAN_SLICES * min(1.0, self.wall() / c.budget))))
        return opt, sched

    # -- the solver side ---------------------------------------------------------------------------------
    def feed(self) -> None:
        """File what the workers finished (new training samples join the set and the buffer) and queue the
        next tasks."""
        records = self.pool.collect()
        for record in records:
            self.solver_idle += record.get("waited", 0.0)
            if "error" in record:
                tqdm.write(f"sample {record['index']} skipped: {record['error']}")
            if self.data.add(record) == "train":
                self.train_set.ids.append(record["index"])
                self.train_set.files.append(self.data.root / record["file"])
                self.position[record["index"]] = len(self.train_set.ids) - 1
                left = self.buffer.add(self.position[record["index"]])
                if left is not None:
                    self.forget(self.train_set, left)
        submit(self.pool, self.data, self.online, Path(self.out))
        if records:
            self.data.save()

    def draw(self, step: int) -> list[int]:
        """Step `step`'s batch: buffer positions packed (shuffled from (seed, step)) up to `batch_size` samples
        and `max_points` points."""
        c, positions = self.config, self.buffer.positions
        sizes = [self.data.records[self.train_set.ids[p]]["n_points"] for p in positions]
        return [positions[j] for j in make_batches(sizes, c.batch_size, c.max_points, c.seed, step)[0]]

    def fit(self) -> list[dict]:
        """Train until the wall budget ends (resuming the run in `out` when there is one); returns the history."""
        c, o = self.config, self.online
        progress = self.start()
        wall = self.clocks["wall"] = self.wall  # the run's clock since its first sample
        bar = tqdm(total=round(c.budget), initial=round(wall()), desc="train online", unit="s", disable=not c.progress,
                   bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} s [{elapsed}<{remaining}]{postfix}")
        losses: list[float] = []
        started, next_record = time.perf_counter(), wall() + o.validate_every
        finished = wall() >= c.budget  # read once a step: the step that ends the budget is always recorded
        while not finished:
            self.feed()
            self.operator.train()
            losses.append(self.train_step([self.draw(progress.step)]))
            progress.step += 1
            bar.set_postfix(samples=len(self.train_set.ids), loss=f"{losses[-1]:.4f}", refresh=False)
            bar.update(round(min(wall(), c.budget)) - bar.n)
            finished = wall() >= c.budget
            if finished or wall() >= next_record:
                record = {"epoch": progress.epoch + 1, "train_loss": float(np.mean(losses)), "steps": len(losses),
                          "lr": float(self.sched.get_last_lr()[0]), "seconds": time.perf_counter() - started,
                          **self.validate(), "samples": len(self.train_set.ids), "buffer": len(self.buffer.positions),
                          "solver_idle_seconds": self.solver_idle}
                record.update({f"{kind}_seconds": clock() for kind, clock in self.clocks.items()})
                self.save(progress, progress.record(record))
                if "val_rel_l2" in record:
                    bar.set_postfix(samples=record["samples"], val=f"{record['val_rel_l2']:.4f}", refresh=False)
                losses, started, next_record = [], time.perf_counter(), wall() + o.validate_every
        bar.close()
        return progress.history


def run_key(config: RunConfig) -> str:
    """What a resumed online run must share with the killed one (solver, options, seed, fields)."""
    o, d = config.online, config.data
    text = json.dumps([o.family, o.command, o.parameters, o.options, o.seed, d.inputs, d.targets], sort_keys=True,
                      default=str)
    return "online:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def submit(pool: SolverPool, data: OnlineDataset, online: OnlineConfig, out: Path | None) -> None:
    """Queue as many tasks as keep every worker busy (none once `online.samples` training samples are made or
    being made): random designs until the validation split is full, then as `online.select` chooses (`out`:
    the run folder whose best model scores candidates; None: no model yet)."""
    for _ in range(pool.wanted()):
        made = len(data.val) + len(data.train) + len(pool.outstanding)
        if online.samples is not None and made >= online.val + online.samples:
            return
        pool.submit(task_for(data.next_index(set(pool.outstanding)), data, online, out, pool))


def task_for(index: int, data: OnlineDataset, online: OnlineConfig, out: Path | None, pool: SolverPool) -> Task:
    """The task of sample `index` (see `submit`)."""
    space = data.family.designs
    if data.wants_val(pool.outstanding):
        data.val_slots.add(index)
        return Task(index)
    if online.select == "random" or space is None:
        return Task(index)
    candidates = space.draw_many([data.manifest.seed or 0, index, 1], online.candidates)
    if online.select == "diversity":
        in_flight = [t.candidates[0] for t in pool.outstanding.values() if len(t.candidates) == 1]
        return Task(index, (candidates[farthest(space, candidates, data.designs() + in_flight)],))
    model = None if out is None or not (out / "model.safetensors").is_file() else str(out / "model.safetensors")
    return Task(index, tuple(candidates), model)


def _gather(pool: SolverPool, data: OnlineDataset, online: OnlineConfig, clock: Clock, budget: float,
            progress: bool = True) -> None:
    """Make samples until the validation split is full and `min_samples` training samples exist (no trainer
    runs yet, so the pool has a worker more); refuses when the budget ends first."""
    bar = tqdm(total=online.val + online.min_samples, initial=len(data.val) + len(data.train),
               desc="first samples", unit="sample", disable=not progress)
    while len(data.val) < online.val or len(data.train) < online.min_samples:
        if clock() >= budget:
            raise GeoopError(f"the budget of {budget:g} s ended before the first {online.val} validation and "
                             f"{online.min_samples} training samples were made", path=data.root,
                             fix="raise train.budget, or lower online.val and online.min_samples")
        submit(pool, data, online, None)
        for record in pool.collect(wait=1.0):
            if "error" in record:
                bar.write(f"sample {record['index']} skipped: {record['error']}")
            data.add(record)
            bar.n = len(data.val) + len(data.train)
            bar.refresh()
        data.save()
        if len(data.failures) > 10 and not data.train and not data.val:
            raise GeoopError(f"the first {len(data.failures)} samples all failed, e.g.: "
                             f"{next(iter(data.failures.values()))}", path=data.root,
                             fix="check the family options (online.options); failures are in the manifest")
    bar.close()


def online_family(config: RunConfig) -> Family:
    """The family an online run makes its samples with: a built-in one, or (`online.family: command`) the
    user's command with its parameters, read options and the fields `data.inputs`/`data.targets`."""
    o, d = config.online, config.data
    if o.family != "command":
        return get_family(o.family)
    if not o.command or not o.parameters or not d.targets:
        raise GeoopError("a user's solver needs its command, its design parameters and the target fields",
                         fix="set online.command (with {out} and {name} per parameter), online.parameters "
                             "({name: [low, high]}) and data.targets")
    for name, span in o.parameters.items():
        if len(span) != 2 or not span[0] < span[1]:
            raise GeoopError(f"online.parameters.{name} = {span} is not a range [low, high]")
    return CommandSolver(o.command, {k: (float(lo), float(hi)) for k, (lo, hi) in o.parameters.items()},
                         tuple(d.inputs or ()), tuple(d.targets), dict(o.read), o.result).family()


def train_online(config: RunConfig) -> dict[str, Any]:
    """Run (or resume) the online training `config` describes; returns {"out", "history", "val" (the last
    validation errors), "samples" (training samples made), "solver_idle_seconds" (summed over the workers,
    after their first sample), "data" (the dataset folder)}. See the module docstring."""
    from geoop.training.run import build_operator, open_split

    c, o = config.train, config.online
    family = online_family(config)
    if c.budget is None or c.clock != "wall":
        raise GeoopError("online training is budgeted in wall seconds (the solver and the trainer share the "
                         "machine)", fix="set train.budget and train.clock=wall (geoop train --online does)")
    if not config.data.root:
        raise GeoopError("online training needs the folder the samples go to", fix="set data.root")
    if o.select != "random" and family.designs is None:
        raise GeoopError(f"{family.name} draws no design parameters, so only random selection applies",
                         fix="use online.select=random (or a family with designs, such as airfoil2d)")
    if o.select == "uncertainty" and family.name == "command":
        raise GeoopError("a user's command gives its mesh only with its solution, so it cannot score candidates "
                         "before solving them", fix="use online.select=random or diversity")
    if o.select == "uncertainty" and c.uncertainty != "variance":
        raise GeoopError("uncertainty selection needs a model that learns where it is unsure",
                         fix="set train.uncertainty=variance")
    require_solvers(family)
    torch.set_num_threads(config.threads or 1)
    out, root = Path(config.out), Path(config.data.root)
    out.mkdir(parents=True, exist_ok=True)
    last = out / "last.safetensors"
    history = load_checkpoint(last)[1]["history"] if last.is_file() else []
    offset = history[-1]["wall_seconds"] if history else 0.0
    options = {**family.options, **o.options}
    data = OnlineDataset(root, family, o.seed, options, o.val)
    clock = Clock("wall", offset)
    solver = family.name if family.name in FAMILIES else family  # a built-in one by name, a user's command whole
    with SolverPool(solver, root, o.seed, options, o.workers + 1, o.timeout) as pool:
        _gather(pool, data, o, clock, c.budget, c.progress)
        pool.retire(1)  # the trainer takes that worker's share from here on
        train_set, val_set = open_split(config, "train", cache=False), open_split(config, "val")
        operator = FieldOperator.from_config(load_checkpoint(last)[1]["operator"]) if last.is_file() else \
            build_operator(train_set, config.model, config.data.lift, config.data.scale, c.uncertainty)
        trainer = OnlineTrainer(operator, train_set, val_set, config, data, pool, clock)
        history = trainer.fit()
        for record in pool.collect():  # what finished since the last step
            data.add(record)
    data.recover()  # what finished as the workers stopped
    data.save(done=True)
    if not (out / "model.safetensors").is_file():
        raise GeoopError(f"the budget of {c.budget:g} s ended before the first training step", path=out,
                         fix="raise train.budget")
    calibrate_checkpoint(out / "model.safetensors", open_split(config, "train"), open_split(config, "val"),
                         residual=c.uncertainty == "residual", progress=c.progress)
    return {"out": out, "history": history, "val": history[-1].get("val") if history else None,
            "samples": len(data.train), "solver_idle_seconds": trainer.solver_idle, "data": root}
