"""KD-tree FNO vs single-grid interpolation FNO vs GINO at one training budget (same epochs, batch size,
learning-rate schedule and data), on the 2D elasticity and 3D potential-flow datasets made by geoop's solvers.

Each (dataset, model) trains in a fresh process (1 torch thread) so its peak memory is its own. Prints JSON:
test relative L2 per field, seconds per epoch, peak RSS, parameters; and the KD-FNO's error relative to the
single-grid FNO with the same backbone (the NUNO claim is 30-60% lower).

    python benchmarks/kdtree_fno.py [--epochs 40] [--n-elasticity 200] [--n-potential 60] [--out out/bench_kdfno]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import in_fresh_process, train_and_measure

BACKBONE_2D = ["model.hidden=32", "model.modes=8", "model.n_layers=4"]
BACKBONE_3D = ["model.hidden=24", "model.modes=4", "model.n_layers=4"]
MODELS = {
    "elasticity2d": {
        "kdfno": ["model.name=kdfno", "model.n_subdomains=8", "model.oversample=1.5"] + BACKBONE_2D,
        "single_grid_fno": ["model.name=kdfno", "model.n_subdomains=1", "model.oversample=1.5"] + BACKBONE_2D,
        "kdfno_leaves_as_batch": ["model.name=kdfno", "model.n_subdomains=8", "model.oversample=1.5",
                                  "model.leaves_as=batch"] + BACKBONE_2D,
        "gino": ["model.name=gino", "model.resolution=32", "model.hidden=32", "model.modes=12", "model.n_layers=4",
                 "model.in_gno_hidden=[32,32]", "model.out_gno_hidden=[64,64]", "model.projection_hidden=64"],
    },
    "potential3d": {
        "kdfno": ["model.name=kdfno", "model.n_subdomains=8", "model.oversample=1.0"] + BACKBONE_3D,
        "single_grid_fno": ["model.name=kdfno", "model.n_subdomains=1", "model.oversample=1.0"] + BACKBONE_3D,
        "gino": ["model.name=gino", "model.resolution=20", "model.hidden=24", "model.modes=6", "model.n_layers=4",
                 "model.in_gno_hidden=[32,32]", "model.out_gno_hidden=[64,64]", "model.projection_hidden=64"],
    },
}


def run_one(dataset: str, model: str, data: Path, out: Path, epochs: int) -> dict:
    """Train one model in this process; returns its figures."""
    settings = MODELS[dataset][model] + [f"data.root={data}", f"train.epochs={epochs}", "train.batch_size=4",
                                         "train.lr=3e-3"]
    return {"dataset": dataset, "model": model, **train_and_measure(settings, out)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench_kdfno")
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--n-elasticity", type=int, default=200)
    ap.add_argument("--n-potential", type=int, default=60)
    ap.add_argument("--datasets", nargs="+", default=list(MODELS))
    ap.add_argument("--models", nargs="+", default=["kdfno", "single_grid_fno", "gino"])
    ap.add_argument("--run", nargs=2, metavar=("DATASET", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    if args.run:
        dataset, model = args.run
        print(json.dumps(run_one(dataset, model, out / "data" / dataset, out / "runs" / f"{dataset}_{model}",
                                 args.epochs)))
        return
    from geoop.data import generate

    sizes = {"elasticity2d": args.n_elasticity, "potential3d": args.n_potential}
    results = []
    for dataset in args.datasets:
        t0 = time.perf_counter()
        manifest = generate(dataset, out / "data" / dataset, n=sizes[dataset], seed=0, workers=2, progress=False)
        print(f"{dataset}: {len(manifest['samples'])} samples in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for model in args.models:
            results.append(in_fresh_process(__file__, ["--out", str(out), "--epochs", str(args.epochs),
                                                       "--run", dataset, model]))
            print(json.dumps(results[-1]), file=sys.stderr)
    summary = {}
    for dataset in args.datasets:
        by = {r["model"]: r for r in results if r["dataset"] == dataset}
        if "kdfno" in by and "single_grid_fno" in by:
            summary[dataset] = {
                "kdfno_error_vs_single_grid": {
                    f: by["kdfno"]["test_rel_l2"][f] / by["single_grid_fno"]["test_rel_l2"][f]
                    for f in by["kdfno"]["test_rel_l2"]},
                "kdfno_mean_error_reduction": 1 - by["kdfno"]["test_rel_l2_mean"] / by["single_grid_fno"][
                    "test_rel_l2_mean"]}
    print(json.dumps({"epochs": args.epochs, "results": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
