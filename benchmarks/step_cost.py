"""What one training step costs: CPU-seconds per step with the user/system split, page faults, peak and growth
of the resident size, for every registered model on every built-in family, with glibc's small-chunk cache on
(what a program importing geoop gets) and off (what the `geoop` command runs with, see `geoop.heap`); and
neuraloperator's FNO and GINO beside geoop's on the same data, grid, width and points.

Each cell runs in a fresh process on one torch thread: the shipped config of the model and family (or, for
`neuralop_fno` / `neuralop_gino`, the settings of geoop's FNO / GINO config: same grid nodes, width, modes and
layers), the samples prepared first, `--warmup` steps, then `--steps` steps measured with `getrusage`.
Targets (issue 33): system CPU at most 5% of a step's CPU; geoop's FNO step at most 0.5x neuraloperator's.

    python benchmarks/step_cost.py [--families ...] [--models ...] [--heaps quiet default] [--steps 40]
        [--data family=FOLDER ...] [--out out/step_cost]

Data: a folder per family is made with the reference solver (24 samples; resumable) unless --data names one.
Prints JSON and writes `step_cost.{json,md}` into --out (results kept: a rerun measures only missing cells).
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("poisson2d", "elasticity2d", "airfoil2d", "potential3d")
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
#: the anchors and the geoop config whose grid, width, modes and layers each one takes
ANCHORS = {"neuralop_fno": "fno", "neuralop_gino": "gino"}


def anchor_settings(anchor: str, family: str, data: Path) -> list[str]:
    """Overrides that give `anchor` the grid nodes, width, modes and layers of geoop's counterpart on `family`
    (geoop's FNO sizes its grid to the points and the box; the anchor's square grid gets as many nodes)."""
    from geoop.training import load_config
    from geoop.training.run import build_operator, datasets

    config = load_config(f"{ANCHORS[anchor]}_{family}", [f"data.root={data}"])
    options = config.model.options
    if anchor == "neuralop_fno":
        train, _, _ = datasets(config)
        net = build_operator(train, config.model, config.data.lift, config.data.scale).model
        nodes = sum(int(s.prod()) for s in net.grids.shapes)
        resolution = round(nodes ** (1 / train.manifest.dim))
    else:
        resolution = options["resolution"]
    return [f"model.resolution={resolution}", f"model.hidden={options['hidden']}",
            f"model.modes={options['modes']}", f"model.n_layers={options['n_layers']}",
            f"train.batch_size={config.train.batch_size}", f"train.lr={config.train.lr}"]


def measure(model: str, family: str, data: Path, steps: int, warmup: int, out: Path) -> dict:
    """One cell, in this process: prepare, `warmup` steps, then `steps` measured steps."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    import neuralop_baselines  # noqa: F401  (registers the anchors)
    from geoop.heap import heap_is_quiet, resident_bytes
    from geoop.training import load_config
    from geoop.training.run import build_operator, datasets
    from geoop.training.trainer import Trainer

    common = [f"data.root={data}", "train.progress=false", "train.device=cpu", f"out={out}"]
    if model in ANCHORS:
        config = load_config(None, common + [f"model.name={model}"] + anchor_settings(model, family, data))
    else:
        config = load_config(f"{model}_{family}", common)
    train_set, _, _ = datasets(config)
    operator = build_operator(train_set, config.model, config.data.lift, config.data.scale)
    trainer = Trainer(operator, train_set, None, config.train, out)
    trainer.start()
    operator.train()
    plan = itertools.chain.from_iterable(trainer.epoch_plan(e) for e in itertools.count())
    for _ in range(warmup):
        trainer.train_step(next(plan))
    rss0, r0, t0 = resident_bytes(), resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    points = 0
    for _ in range(steps):
        batch = next(plan)
        points += sum(len(train_set[i].pos) for shard in batch for i in shard)
        trainer.train_step(batch)
    wall, r1, rss1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF), resident_bytes()
    user, system = (r1.ru_utime - r0.ru_utime) / steps, (r1.ru_stime - r0.ru_stime) / steps
    return {"model": model, "family": family, "heap": "quiet" if heap_is_quiet() else "default",
            "config": config.to_dict()["model"], "steps": steps, "points_per_step": points / steps,
            "cpu_s_per_step": user + system, "user_s_per_step": user, "system_s_per_step": system,
            "system_share": system / (user + system), "wall_s_per_step": wall / steps,
            "minor_faults_per_step": (r1.ru_minflt - r0.ru_minflt) / steps,
            "rss_growth_mb": ((rss1 or 0) - (rss0 or 0)) / 2**20, "peak_rss_mb": r1.ru_maxrss / 1024,
            "trims": trainer.trimmer.trims, "parameters": sum(p.numel() for p in operator.parameters()),
            "date": date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores"}


def make_data(family: str, root: Path, n: int = 24) -> None:
    from geoop.data import generate

    generate(family, root, n=n, seed=0, workers=2, progress=False)


def _in_fresh_process(model: str, family: str, heap: str, data: Path, args: argparse.Namespace) -> dict:
    from geoop.heap import QUIET_HEAP, with_quiet_heap

    env = {**os.environ, **ONE_THREAD}
    if heap == "quiet":
        env = with_quiet_heap(env)
    else:  # the cache at glibc's default
        env["GLIBC_TUNABLES"] = ":".join(t for t in env.get("GLIBC_TUNABLES", "").split(":")
                                         if t and t != QUIET_HEAP)
    run = Path(args.out) / "runs" / f"{family}_{model}_{heap}"
    cmd = [sys.executable, __file__, "--run", model, family, str(data), str(run), str(args.steps), str(args.warmup)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        return {"model": model, "family": family, "heap": heap, "failed": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(results: dict) -> str:
    """Markdown: one row per family and model, the two heaps side by side; then each anchor against geoop."""
    cells = results["cells"]
    rows = ["| family | model | CPU s / step (quiet heap) | system share (quiet) | faults / step (quiet) | "
            "RSS growth MB (quiet) | CPU s / step (default heap) | system share (default) | faults / step "
            "(default) | RSS growth MB (default) |", "|---|---|---|---|---|---|---|---|---|---|"]
    for family in FAMILIES:
        for model in sorted({c["model"] for c in cells.values() if c["family"] == family}):
            parts = []
            for heap in ("quiet", "default"):
                c = cells.get(f"{family}/{model}/{heap}")
                parts += (["failed"] + ["-"] * 3 if c and "failed" in c else ["-"] * 4 if c is None else
                          [f"{c['cpu_s_per_step']:.3f}", f"{100 * c['system_share']:.1f}%",
                           f"{c['minor_faults_per_step']:.0f}", f"{c['rss_growth_mb']:.0f}"])
            rows.append(f"| {family} | {model} | " + " | ".join(parts) + " |")
    rows += ["", "Against neuraloperator (quiet heap, one thread, same data, grid nodes, width, modes and layers):",
             "", "| family | geoop | CPU s / step | neuraloperator | CPU s / step | ratio |",
             "|---|---|---|---|---|---|"]
    for family in FAMILIES:
        for anchor, ours in ANCHORS.items():
            a, g = cells.get(f"{family}/{anchor}/quiet"), cells.get(f"{family}/{ours}/quiet")
            if a and g and "failed" not in a and "failed" not in g:
                rows.append(f"| {family} | {ours} | {g['cpu_s_per_step']:.3f} | {anchor} | {a['cpu_s_per_step']:.3f} "
                            f"| {g['cpu_s_per_step'] / a['cpu_s_per_step']:.2f} |")
    return "\n".join(rows) + "\n"


def main() -> None:
    from geoop.models.registry import MODELS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    ap.add_argument("--models", nargs="+", default=list(MODELS) + list(ANCHORS))
    ap.add_argument("--heaps", nargs="+", default=["quiet", "default"], choices=["quiet", "default"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--data", nargs="*", default=[], metavar="FAMILY=FOLDER", help="existing datasets to use")
    ap.add_argument("--out", default="out/step_cost")
    ap.add_argument("--run", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        model, family, data, run, steps, warmup = args.run
        print(json.dumps(measure(model, family, Path(data), int(steps), int(warmup), Path(run))))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    folders = dict(item.split("=", 1) for item in args.data)
    for family in args.families:
        if family not in folders:
            folders[family] = str(out / "data" / family)
            make_data(family, Path(folders[family]))
    path = out / "step_cost.json"
    results = json.loads(path.read_text()) if path.is_file() else {"cells": {}}
    for family, model, heap in itertools.product(args.families, args.models, args.heaps):
        key = f"{family}/{model}/{heap}"
        if key in results["cells"] and "failed" not in results["cells"][key]:
            continue
        if model in ANCHORS and heap != "quiet":
            continue
        t0 = time.perf_counter()
        results["cells"][key] = _in_fresh_process(model, family, heap, Path(folders[family]), args)
        c = results["cells"][key]
        print(f"{key}: " + ("FAILED" if "failed" in c else f"{c['cpu_s_per_step']:.3f} CPU s/step, "
                            f"system {100 * c['system_share']:.1f}%, growth {c['rss_growth_mb']:.0f} MB")
              + f" ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(path)
    (out / "step_cost.md").write_text(table(results))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
