"""Accuracy at equal cost: every registered geoop model family (its shipped config) and two outside baselines
from neuraloperator (its FNO on a raster of the mesh, read back at the nodes; its GINO) trained on the same
splits of geoop's built-in datasets for the same budget of CPU-seconds of the training process (one torch
thread; the budget is the stopping rule and sizes the learning-rate schedule), scored on the test split only;
on datasets with design parameters and a body also non-learned baselines (`nearest_designs`: the 5 nearest
training designs' fields carried over and averaged; around a 2D body `panel_method`: the inviscid flow), and
on datasets with a body the force coefficients integrated from the predicted surface fields (mean absolute
error, R^2, Spearman of Cl and Cd).

    python benchmarks/accuracy.py [--budget 900] [--datasets poisson2d ...] [--models transolver ...]
                                  [--jobs 2] [--out out/accuracy] [--quick]

Each (dataset, model) cell trains in a fresh process. Finished cells are kept in `OUT/results.json` (dated,
with the machine and commit) and not rerun, so the run can be stopped and resumed, and filled over several
sittings (`--resume-from benchmarks/results/accuracy.json` starts a new machine from the published cells).
Writes `OUT/results.json`, `OUT/results.md` (the table) and `OUT/accuracy.png` (validation error against
training CPU-seconds, one curve per model). `--quick` is a smoke test of the whole pipeline in a few minutes.
Needs `pip install neuraloperator==2.0.0` for the baselines.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date
from pathlib import Path

from geoop.heap import with_quiet_heap

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"poisson2d": 1000, "elasticity2d": 1200, "potential3d": 400, "airfoil2d": 740, "body3d": 200}
#: the same families on graded meshes (fine at the holes / void, 10x coarser away), for benchmarks/kdtree_fno.py;
#: not in the default run
GRADED = {"poisson2d_graded": 1000, "elasticity2d_graded": 1200}
SIZES = {**DATASETS, **GRADED}
QUICK = {"poisson2d": 40, "elasticity2d": 40, "potential3d": 16, "poisson2d_graded": 40, "elasticity2d_graded": 40,
         "airfoil2d": 12, "body3d": 6}
GEOOP = ["fno", "transolver", "gino", "kdfno", "beno", "gnn", "mino", "gnot"]
BASELINES = {"neuralop_fno": {2: ["model.resolution=64", "model.hidden=32", "model.modes=16"],
                              3: ["model.resolution=32", "model.hidden=24", "model.modes=12"]},
             "neuralop_gino": {2: ["model.resolution=32", "model.hidden=32", "model.modes=12"],
                               3: ["model.resolution=16", "model.hidden=24", "model.modes=8"]}}
#: ablations: a geoop model with what geoop derives from the data switched off (boundary data carried inward,
#: targets lifted by an input, the mirror augmentation), to show what each does
VARIANTS = {"fno_plain": ("fno", ["data.lift=null", "data.extension=0"]),
            "fno_no_mirrors": ("fno", ["model.symmetries=[]"]),
            "kdfno_one_grid": ("kdfno", ["model.n_subdomains=1"]),  # the K-D tree's single-grid twin
            # airfoil2d without the inviscid-flow and skin-friction inputs: the velocity lifted by the free stream
            "fno_no_prior": ("fno", ["data.potential_flow=null", "data.viscosity=null", "data.lift={U: freestream}"]),
            # body3d with the inviscid flow around the body (3D linear elements) as inputs
            "transolver_inviscid": ("transolver", ["data.potential_flow=freestream"])}
#: the non-learned baselines (benchmarks/nonlearned.py): the nearest designs on datasets whose family draws design
#: parameters around a body, the panel method around a 2D body
NONLEARNED = {"nearest_designs": ("airfoil2d", "body3d"), "panel_method": ("airfoil2d",)}
#: datasets a variant means something on (default: all)
VARIANT_DATASETS = {"fno_no_mirrors": ("poisson2d",), "kdfno_one_grid": tuple(SIZES), "fno_no_prior": ("airfoil2d",),
                    "transolver_inviscid": ("body3d",), **NONLEARNED}
#: what every cell shares (the recipe of the model's config decides lr, batch size and schedule)
COMMON = ["train.device=cpu", "train.progress=false", "threads=1", "train.clock=cpu", "train.epochs=null",
          "train.patience=null"]
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def family_of(dataset: str) -> str:
    """The generator family of a benchmark dataset (a graded one is its family with `grading=10`)."""
    return dataset.removesuffix("_graded")


def make_data(dataset: str, root: Path, n: int) -> None:
    """Generate (or finish) a benchmark dataset with the reference solver; a finished one of at least `n`
    samples (e.g. a link to a dataset made by `geoop data make` with other output options, such as
    `cases=DIR`) is used as it is."""
    from geoop.data import generate, read_manifest

    if (root / "manifest.json").is_file():
        made = read_manifest(root)
        if made.status == "complete" and (made.n_requested or len(made.samples)) >= n:
            return

    options = {"grading": 10.0} if dataset in GRADED else {}
    generate(family_of(dataset), root, n=n, seed=0, workers=2, progress=False, **options)


def cell_settings(dataset: str, model: str, data: Path, budget: float) -> tuple[Path | None, list[str]]:
    """The config file and overrides of one cell (a graded dataset uses its family's configs)."""
    dim = 3 if dataset.endswith("3d") else 2
    dataset = family_of(dataset)
    settings = COMMON + [f"data.root={data}", f"train.budget={budget}"]
    if model in BASELINES:
        return None, settings + [f"model.name={model}", "train.batch_size=4", "train.lr=2e-3"] + BASELINES[model][dim]
    family, extra = VARIANTS.get(model, (model, []))
    config = ROOT / "configs" / f"{family}_{dataset}.yaml"
    return (config if config.is_file() else None), settings + [f"model.name={family}"] + extra


def run_cell(dataset: str, model: str, data: Path, out: Path, budget: float) -> dict:
    """Train one cell in this process (called in a fresh interpreter); its record."""
    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(Path(__file__).parent))
    import neuralop_baselines  # noqa: F401  (registers the baselines)
    from geoop.training import load_config, load_model, train

    if model in NONLEARNED:
        from nonlearned import evaluate

        return {"dataset": dataset, "model": model, "config": None, "date": date.today().isoformat(),
                "machine": machine(), "budget_cpu_s": budget, "commit": _commit(), **evaluate(data, model),
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    config, settings = cell_settings(dataset, model, data, budget)
    result = train(load_config(config, settings + [f"out={out}"]))
    history, test = result["history"], result["test"]
    curve = [{"cpu_seconds": h["cpu_seconds"], "val_rel_l2": h.get("val_rel_l2"), "val": h.get("val", {})}
             for h in history]
    return {"dataset": dataset, "model": model, "config": str(config.relative_to(ROOT)) if config else None,
            "date": date.today().isoformat(), "machine": machine(), "budget_cpu_s": budget, "commit": _commit(),
            "cpu_seconds": history[-1]["cpu_seconds"], "user_seconds": history[-1]["user_seconds"],
            "system_seconds": history[-1]["system_seconds"], "epochs": len(history),
            "steps": sum(h["steps"] for h in history),
            "test": {n: {k: v for k, v in f.items() if k.startswith("rel_l2")} for n, f in test["fields"].items()},
            "test_rel_l2_mean": test["rel_l2"], "test_samples": test["samples"],
            **({"test_forces": test["forces"]} if "forces" in test else {}),
            "parameters": sum(p.numel() for p in load_model(out).parameters()),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "curve": curve}


def _commit() -> str | None:
    """The git commit of the code that trained the cell (None outside a checkout)."""
    done = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, 1 torch thread"


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {"cells": {}}


def _save(path: Path, results: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=1))
    tmp.replace(path)


def _in_fresh_process(dataset: str, model: str, data: Path, out: Path, budget: float, log: Path) -> dict:
    args = [sys.executable, __file__, "--run", dataset, model, str(data), str(out), str(budget)]
    with open(log, "w") as f:
        done = subprocess.run(args, stdout=subprocess.PIPE, stderr=f, text=True,  # the heap `geoop train` runs with
                              env=with_quiet_heap({**os.environ, **ONE_THREAD}))
    if done.returncode != 0:
        return {"dataset": dataset, "model": model, "failed": log.read_text()[-2000:], "date": date.today().isoformat()}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _system(cell: dict) -> str:
    """' (12 s)': the kernel's share of a cell's CPU-seconds, for cells that recorded it."""
    return f" ({cell['system_seconds']:.0f} s)" if "system_seconds" in cell else ""


def table(results: dict) -> str:
    """Markdown: one row per (dataset, model), best first within each dataset."""
    rows = ["| dataset | model | test rel. L2 per field | mean | parameters | CPU s (system) | epochs | peak RSS "
            "| date, commit |", "|---|---|---|---|---|---|---|---|---|"]
    cells = [c for c in results["cells"].values() if "failed" not in c]
    for dataset in SIZES:
        mine = sorted((c for c in cells if c["dataset"] == dataset), key=lambda c: c["test_rel_l2_mean"])
        for c in mine:
            fields = ", ".join(f"{n} {v['rel_l2']:.4f}" + (f" (clipped {v['rel_l2_clipped']:.4f})"
                                                          if abs(v["rel_l2_clipped"] / v["rel_l2"] - 1) > 0.01 else "")
                               for n, v in c["test"].items())
            rows.append(f"| {dataset} | {c['model']} | {fields} | {c['test_rel_l2_mean']:.4f} | "
                        f"{c['parameters'] / 1e3:.0f}k | {c['cpu_seconds']:.0f}{_system(c)} | {c['epochs']} | "
                        f"{c['peak_rss_mb'] / 1024:.2f} GB | {c['date']}, {c.get('commit') or '-'} |")
    failed = [c for c in results["cells"].values() if "failed" in c]
    rows += [f"\nfailed: {c['dataset']} / {c['model']}" for c in failed]
    forces = [c for c in cells if "test_forces" in c]
    if forces:
        rows += ["", "Force coefficients integrated from the predicted surface fields, against the same integral "
                 "of the true ones (test split):", "",
                 "| dataset | model | Cl mean abs. error | Cl R^2 | Cl Spearman | Cd mean abs. error | Cd R^2 "
                 "| Cd Spearman |", "|---|---|---|---|---|---|---|---|"]
        for c in sorted(forces, key=lambda c: (c["dataset"], c["test_forces"]["cl"]["mae"])):
            f = c["test_forces"]
            rows.append(f"| {c['dataset']} | {c['model']} | {f['cl']['mae']:.4f} | {f['cl']['r2']:.3f} | "
                        f"{f['cl']['spearman']:.4f} | {f['cd']['mae']:.5f} | {f['cd']['r2']:.3f} | "
                        f"{f['cd']['spearman']:.4f} |")
    return "\n".join(rows) + "\n"


def plot(results: dict, path: Path) -> None:
    """Validation error against training CPU-seconds: one panel per dataset, one curve per model."""
    from matplotlib.figure import Figure

    cells = [c for c in results["cells"].values() if "failed" not in c]
    datasets = [d for d in SIZES if any(c["dataset"] == d for c in cells)]
    if not datasets:
        return
    fig = Figure(figsize=(5.5 * len(datasets), 4.2))
    for i, dataset in enumerate(datasets):
        ax = fig.add_subplot(1, len(datasets), i + 1)
        for c in sorted((c for c in cells if c["dataset"] == dataset), key=lambda c: c["test_rel_l2_mean"]):
            points = [(p["cpu_seconds"], p["val_rel_l2"]) for p in c["curve"] if p["val_rel_l2"] is not None]
            if not points:  # the non-learned baseline: its test error as a level line
                ax.axhline(c["test_rel_l2_mean"], color="k", lw=0.8, label=f"{c['model']} (test, no training)")
                continue
            style = "--" if c["model"] in BASELINES else ":" if c["model"] in VARIANTS else "-"
            label = f"{c['model']} ({c['test_rel_l2_mean']:.3f})"
            ax.semilogy(*zip(*points, strict=True), style, marker=".", label=label)
        ax.set_xlabel("training CPU-seconds (1 thread)")
        ax.set_ylabel("validation relative L2 (mean over fields)")
        ax.set_title(dataset)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, title="test error", title_fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/accuracy")
    ap.add_argument("--budget", type=float, default=900.0, help="CPU-seconds of training per cell")
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(SIZES))
    ap.add_argument("--models", nargs="+", default=GEOOP + list(BASELINES) + list(VARIANTS) + list(NONLEARNED))
    ap.add_argument("--jobs", type=int, default=2, help="cells trained at once (each on one thread)")
    ap.add_argument("--resume-from", default=None, metavar="JSON",
                    help="finished cells to start from when OUT has none yet, e.g. benchmarks/results/accuracy.json "
                         "(the tables in docs/benchmarks.md), so that a new machine fills in only the missing cells")
    ap.add_argument("--quick", action="store_true", help="tiny datasets and budget: a smoke test")
    ap.add_argument("--run", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        dataset, model, data, out, budget = args.run
        print(json.dumps(run_cell(dataset, model, Path(data), Path(out), float(budget))))
        return
    out = Path(args.out) / ("quick" if args.quick else "")
    out.mkdir(parents=True, exist_ok=True)
    budget = 25.0 if args.quick else args.budget
    default = GEOOP + list(BASELINES) + list(VARIANTS) + list(NONLEARNED)
    models = ["transolver", "neuralop_fno"] if args.quick and args.models == default else args.models
    sizes = QUICK if args.quick else SIZES
    for dataset in args.datasets:  # resumable: finished samples are kept
        t0 = time.perf_counter()
        make_data(dataset, out / "data" / dataset, sizes[dataset])
        print(f"{dataset}: data ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    path = out / "results.json"
    if args.resume_from and not path.is_file():
        _save(path, _load(Path(args.resume_from)))
    results = _load(path)
    def pending(d: str, m: str) -> bool:
        cell = results["cells"].get(f"{d}/{m}")
        return d in VARIANT_DATASETS.get(m, (d,)) and (cell is None or "failed" in cell
                                                      or cell["budget_cpu_s"] != budget)

    todo = [(d, m) for m in models for d in args.datasets if pending(d, m)]  # models first
    (out / "logs").mkdir(exist_ok=True)

    def one(cell: tuple[str, str]) -> dict:
        d, m = cell
        run = out / "runs" / f"{d}_{m}"
        if run.exists():  # a cell that did not finish starts over: its budget is measured in one sitting
            import shutil
            shutil.rmtree(run)
        return _in_fresh_process(d, m, out / "data" / d, run, budget, out / "logs" / f"{d}_{m}.log")

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in as_completed([pool.submit(one, cell) for cell in todo]):
            record = future.result()
            results = _load(path)
            results["cells"][f"{record['dataset']}/{record['model']}"] = record
            _save(path, results)
            status = "failed" if "failed" in record else f"test {record['test_rel_l2_mean']:.4f}"
            print(f"{record['dataset']} / {record['model']}: {status}", file=sys.stderr)
            (out / "results.md").write_text(table(results))
            plot(results, out / "accuracy.png")
    results = _load(path)
    (out / "results.md").write_text(table(results))
    plot(results, out / "accuracy.png")
    print(json.dumps({k: {"test_rel_l2_mean": v.get("test_rel_l2_mean"), "test": v.get("test")}
                      for k, v in results["cells"].items()}, indent=1))


if __name__ == "__main__":
    main()
