"""Trust at equal cost: do the calibrated error bands hold, how narrow are they, and does the novelty flag catch
geometries unlike the training set?

Each cell is a (dataset, model, uncertainty) triple trained like a cell of benchmarks/accuracy.py (the shipped
config, the same splits, one torch thread, a budget of training CPU-seconds), with `train.uncertainty` set to
"constant" (one band width per channel) or "variance" (a variance head trained with the model); a "residual"
cell takes the "constant" cell's trained model and fits a residual scale network to it (no retraining, the
model's predictions unchanged: the same test error). After training the model is
calibrated on the validation split only and scored on the test split: coverage of the bands over points and of
the relative-L2 bounds over samples at several confidences (a reliability diagram), band width, how well the
bounds rank the true errors (Spearman), the test relative L2 of the point prediction, and the CPU-seconds of
training and calibration. The novelty cells (`ood`) train on the samples of half of potential3d's shape kinds
and score the novelty p-values of held-back samples of those kinds against samples of the other kinds (AUROC,
share flagged).

    python benchmarks/trust.py [--cells airfoil2d/kdfno/constant ...] [--budget 900] [--jobs 2]
                               [--out out/trust] [--reuse out/accuracy/runs]

A cell may carry training settings after `@` (`airfoil2d/kdfno/variance@uncertainty_weight=0.01`, several
separated by commas): the variant trains with them, under its own name.

`--reuse DIR`: a "constant" (or "residual") cell whose accuracy-benchmark run `DIR/<dataset>_<model>` exists is
calibrated from it instead of retrained (the same config and budget); a "residual" cell otherwise reuses the
"constant" cell's run in OUT/runs. Finished cells are kept in `OUT/results.json` and not
rerun. Writes `OUT/results.json`, `OUT/results.md` and `OUT/reliability.png`.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

import accuracy  # noqa: E402  (datasets, configs and the machine record are the accuracy benchmark's)

CONFIDENCES = (0.5, 0.7, 0.8, 0.9, 0.95)
DEFAULT_CELLS = ["airfoil2d/kdfno/constant", "airfoil2d/kdfno/variance", "poisson2d/fno/constant",
                 "poisson2d/fno/variance", "poisson2d/gino/constant", "poisson2d/gino/variance",
                 "elasticity2d/fno/constant", "elasticity2d/fno/variance", "potential3d/transolver/constant",
                 "potential3d/transolver/variance", "potential3d/transolver/ood"]


def run_cell(cell: str, data: Path, out: Path, budget: float, reuse: Path | None) -> dict:
    """Train (or reuse), calibrate and score one cell in this process; its record."""
    import torch

    torch.set_num_threads(1)
    from geoop.data.dataset import SimulationDataset
    from geoop.training import load_config, load_model, train
    from geoop.training.calibration import calibrate_checkpoint, coverage, sample_records
    from geoop.training.trainer import Evaluator

    triple, _, tweaks = cell.partition("@")
    dataset, model, uncertainty = triple.split("/")
    config, settings = accuracy.cell_settings(dataset, model, data, budget)
    settings += [f"train.{tweak}" for tweak in tweaks.split(",") if tweak]
    record = {"cell": cell, "dataset": dataset, "model": model, "uncertainty": uncertainty, "budget_cpu_s": budget,
              "date": date.today().isoformat(), "machine": accuracy.machine(), "commit": accuracy._commit()}
    previous = None if reuse is None else reuse / f"{dataset}_{model}"
    if uncertainty == "residual" and (previous is None or not (previous / "model.safetensors").is_file()):
        previous = out.parent / f"{dataset}_{model}_constant"
    if uncertainty in ("constant", "residual") and previous is not None and \
            (previous / "model.safetensors").is_file():
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(previous / "model.safetensors", out / "model.safetensors")
        history = [json.loads(line) for line in (previous / "metrics.jsonl").read_text().splitlines()]
        record["reused"] = f"run {previous.name}"  # the folder's name: no machine paths in results
    else:
        extra = [f"train.uncertainty={'variance' if uncertainty == 'variance' else 'constant'}"]
        result = train(load_config(config, settings + extra + [f"out={out}"]))
        history = result["history"]
    record["train_cpu_seconds"] = history[-1]["cpu_seconds"]
    record["epochs"] = len(history)
    fields = load_model(out).fields
    kwargs = {"inputs": list(fields.inputs), "targets": list(fields.targets), "extension": fields.extension,
              "body": fields.body, "potential_flow": fields.potential_flow, "viscosity": fields.viscosity}
    splits = {s: SimulationDataset(data, s, **kwargs) for s in ("train", "val", "test")}
    t0 = time.process_time()
    calibrate_checkpoint(out / "model.safetensors", splits["train"], splits["val"], residual=uncertainty == "residual")
    record["calibration_cpu_seconds"] = time.process_time() - t0
    operator = load_model(out)
    evaluator = Evaluator(operator, device="cpu", batch_size=4, cache="memory")
    record["test_rel_l2_mean"] = evaluator.evaluate(splits["test"], forces=False)["rel_l2"]
    records = sample_records(operator, splits["test"], evaluator)
    record["coverage"] = {str(c): coverage(records, operator.trust.calibration, c) for c in CONFIDENCES}
    if operator.trust.novelty is not None:
        from geoop.training.calibration import described_inputs, descriptors

        p = operator.trust.novelty.p_value(descriptors(operator, splits["test"],
                                                       described_inputs(operator, splits["test"])))
        record["test_flagged_share"] = float((p < 0.05).mean())
    return record


def run_ood(data: Path, out: Path, budget: float) -> dict:
    """potential3d: train on samples of the first half of the shape kinds (their val split calibrates), then
    score novelty p-values of held-back samples of those kinds and of every sample of the other kinds."""
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from geoop.data.manifest import read_manifest
    from geoop.data.splits import make_splits
    from geoop.training import load_config, load_model, train
    from geoop.training.calibration import described_inputs, descriptors

    manifest = read_manifest(data)
    kinds = {}
    for r in manifest.samples:
        with np.load(data / r["file"], allow_pickle=False) as z:
            kinds[r["index"]] = int(z["global_data:shape"])
    names = sorted(set(kinds.values()))
    seen = set(names[: len(names) // 2])
    inside = sorted(i for i, k in kinds.items() if k in seen)
    outside = sorted(i for i, k in kinds.items() if k not in seen)
    subset = out / "data"
    if not (subset / "manifest.json").is_file():
        subset.mkdir(parents=True, exist_ok=True)
        link = subset / "samples"
        if not link.exists():
            link.symlink_to((data / "samples").resolve(), target_is_directory=True)
        from dataclasses import replace

        replace(manifest, splits=make_splits(inside, 0, (0.8, 0.1, 0.1))).write(subset)
    config, settings = accuracy.cell_settings("potential3d", "transolver", subset, budget)
    train(load_config(config, settings + [f"out={out / 'run'}"]))
    operator = load_model(out / "run")
    from geoop.data.dataset import SimulationDataset

    test = SimulationDataset(subset, "test")
    far = SimulationDataset(subset, "all")
    far.ids = outside
    far.files = [data / manifest.files[i] for i in outside]
    inputs = described_inputs(operator, test)
    p_in = operator.trust.novelty.p_value(descriptors(operator, test, inputs))
    p_out = operator.trust.novelty.p_value(descriptors(operator, far, inputs))
    scores = np.concatenate([-p_in, -p_out])  # lower p = more novel
    labels = np.concatenate([np.zeros(len(p_in)), np.ones(len(p_out))])
    from sklearn.metrics import roc_auc_score

    return {"cell": "potential3d/transolver/ood", "seen_kinds": sorted(seen), "unseen_kinds": sorted(set(names) - seen),
            "in_distribution_test": len(p_in), "out_of_distribution": len(p_out),
            "reference_scores": len(operator.trust.novelty.calibration), "auroc": float(roc_auc_score(labels, scores)),
            "flagged": {str(level): {"seen": float((p_in < level).mean()), "unseen": float((p_out < level).mean())}
                        for level in (0.01, 0.05, 0.1)},
            "date": date.today().isoformat(), "machine": accuracy.machine(), "commit": accuracy._commit()}


def table(results: dict) -> str:
    """The Markdown table of the finished cells."""
    lines = ["| cell | test rel. L2 | 90% point coverage | 90% sample coverage | band width / RMS | "
             "bound-error Spearman | train CPU-s | calibration CPU-s |", "|---|---|---|---|---|---|---|---|"]
    for name, r in sorted(results.items()):
        if "coverage" not in r:
            continue
        c = r["coverage"]["0.9"]
        mean = lambda key, c=c: sum(f[key] for f in c.values()) / len(c)  # noqa: E731
        rho = [f["bound_error_spearman"] for f in c.values() if f["bound_error_spearman"] is not None]
        lines.append(f"| {name} | {r['test_rel_l2_mean']:.4f} | {mean('point_coverage'):.3f} | "
                     f"{mean('sample_coverage'):.3f} | {mean('relative_band_width'):.3f} | "
                     f"{(sum(rho) / len(rho)) if rho else float('nan'):.2f} | {r['train_cpu_seconds']:.0f} | "
                     f"{r['calibration_cpu_seconds']:.0f} |")
    ood = [r for r in results.values() if "auroc" in r]
    from geoop.data.families.potential3d import SHAPES

    kind = lambda ids: ", ".join(SHAPES[i] if i < len(SHAPES) else f"file {i}" for i in ids)  # noqa: E731
    for r in ood:
        flags = ", ".join(f"p < {level}: {f['seen']:.1%} of the seen and {f['unseen']:.1%} of the unseen"
                          for level, f in r["flagged"].items())
        seen, unseen = kind(r["seen_kinds"]), kind(r["unseen_kinds"])
        lines += ["", f"Novelty ({r['cell']}): AUROC {r['auroc']:.3f} between {r['in_distribution_test']} held-back "
                      f"samples of the seen shape kinds ({seen}) and {r['out_of_distribution']} samples of the unseen "
                      f"ones ({unseen}), against {r['reference_scores']} reference scores; flagged at {flags}."]
    return "\n".join(lines) + "\n"


def reliability(results: dict, path: Path) -> None:
    """Nominal confidence against empirical point and sample coverage, one line per cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, r in sorted(results.items()):
        if "coverage" not in r:
            continue
        levels = sorted(float(c) for c in r["coverage"])
        for ax, key in zip(axes, ("point_coverage", "sample_coverage"), strict=True):
            got = [sum(f[key] for f in r["coverage"][str(c)].values()) / len(r["coverage"][str(c)]) for c in levels]
            ax.plot(levels, got, "o-", label=name)
    for ax, title in zip(axes, ("points (bands)", "samples (relative-L2 bounds)"), strict=True):
        ax.plot([0.4, 1], [0.4, 1], "k--", lw=1)
        ax.set(xlabel="nominal confidence", ylabel="empirical coverage on the test split", title=title)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", nargs="*", default=DEFAULT_CELLS)
    ap.add_argument("--budget", type=float, default=900.0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--out", default=str(ROOT / "out" / "trust"))
    ap.add_argument("--data", default=None, help="folder of the datasets (default: OUT/data)")
    ap.add_argument("--reuse", default=None, help="runs folder of benchmarks/accuracy.py to calibrate from")
    ap.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # one cell, in a fresh process
    args = ap.parse_args()
    out = Path(args.out)
    data_root = Path(args.data) if args.data else out / "data"
    if args.cell:
        dataset = args.cell.split("/")[0]
        run = out / "runs" / args.cell.replace("/", "_")
        record = run_ood(data_root / dataset, run, args.budget) if args.cell.endswith("/ood") else \
            run_cell(args.cell, data_root / dataset, run, args.budget, Path(args.reuse) if args.reuse else None)
        print("RESULT " + json.dumps(record))
        return
    results_path = out / "results.json"
    results = json.loads(results_path.read_text())["cells"] if results_path.is_file() else {}
    todo = [c for c in args.cells if c not in results]
    for dataset in sorted({c.split("/")[0] for c in todo}):
        if not (data_root / dataset / "manifest.json").is_file() or \
                json.loads((data_root / dataset / "manifest.json").read_text()).get("status") != "complete":
            accuracy.make_data(dataset, data_root / dataset, accuracy.SIZES[dataset])

    def one(cell: str) -> dict:
        cmd = [sys.executable, __file__, "--cell", cell, "--out", str(out), "--data", str(data_root),
               "--budget", str(args.budget)] + (["--reuse", args.reuse] if args.reuse else [])
        log = out / "logs" / f"{cell.replace('/', '_')}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(cmd, capture_output=True, text=True, env={**accuracy.os.environ, **accuracy.ONE_THREAD})
        log.write_text(done.stdout + done.stderr)
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        return json.loads(lines[-1][7:]) if lines else {"cell": cell, "failed": done.stderr[-2000:]}

    with ThreadPoolExecutor(max_workers=max(1, min(2, args.jobs))) as pool:
        for future in as_completed([pool.submit(one, c) for c in todo]):
            record = future.result()
            results[record["cell"]] = record
            out.mkdir(parents=True, exist_ok=True)
            tmp = results_path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"cells": results}, indent=1))
            tmp.replace(results_path)
            print(f"{record['cell']}: {'failed' if 'failed' in record else 'done'}", flush=True)
    (out / "results.md").write_text(table(results))
    reliability(results, out / "reliability.png")
    print(table(results))


if __name__ == "__main__":
    main()
