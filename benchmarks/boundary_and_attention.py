"""Boundary embedding and attention operators at one training budget, on datasets made by geoop's solvers.

(a) Unseen shapes, Poisson: train on domains with 0-1 holes, test on domains with 2-3 holes (a family of shapes
    never seen in training): BENO vs the plain message-passing GNN over the same graph and features (about the
    same number of parameters), with GINO, MINO and GNOT alongside.
(b) Attention operators vs GINO on the elasticity dataset (geometry in, displacement and stress out).

Each run trains in a fresh process (1 torch thread). Prints JSON: test relative L2 per field, seconds per
epoch, parameters.

    python benchmarks/boundary_and_attention.py [--epochs 20] [--n 120] [--out out/bench_boundary]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common import in_fresh_process, train_and_measure

MODELS = {
    "beno": ["model.name=beno", "model.hidden=32", "model.layers=4", "model.heads=4", "model.boundary_layers=1",
             "model.k=6"],
    "gnn": ["model.name=gnn", "model.hidden=48", "model.layers=4", "model.k=6"],
    "gino": ["model.name=gino", "model.resolution=32", "model.hidden=32", "model.modes=12", "model.n_layers=4",
             "model.in_gno_hidden=[32,32]", "model.out_gno_hidden=[64,64]", "model.projection_hidden=64"],
    "mino": ["model.name=mino", "model.tokens_per_axis=10", "model.hidden=64", "model.layers=3",
             "model.decoder_layers=2", "model.attention=galerkin"],
    "gnot": ["model.name=gnot", "model.hidden=64", "model.layers=3", "model.attention=linear"],
}
TASKS = {"poisson_unseen_shapes": ["beno", "gnn", "gino", "mino", "gnot"], "elasticity": ["gino", "mino", "gnot"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench_boundary")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--n", type=int, default=120, help="training-family samples per dataset")
    ap.add_argument("--n-test", type=int, default=30, help="unseen-shape test samples")
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--run", nargs=2, metavar=("TASK", "MODEL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    out = Path(args.out)
    data = {"poisson_unseen_shapes": out / "data" / "poisson_0_1_holes", "elasticity": out / "data" / "elasticity2d"}
    if args.run:
        task, model = args.run
        test = out / "data" / "poisson_2_3_holes" if task == "poisson_unseen_shapes" else None
        settings = MODELS[model] + [f"data.root={data[task]}", f"train.epochs={args.epochs}", "train.batch_size=4",
                                    "train.lr=2e-3"]
        print(json.dumps({"task": task, "model": model,
                          **train_and_measure(settings, out / "runs" / f"{task}_{model}", test)}))
        return
    from geoop.data import generate

    t0 = time.perf_counter()
    if "poisson_unseen_shapes" in args.tasks:
        generate("poisson2d", data["poisson_unseen_shapes"], n=args.n, seed=0, workers=2, progress=False,
                 holes=(0, 1))
        generate("poisson2d", out / "data" / "poisson_2_3_holes", n=args.n_test, seed=1, workers=2, progress=False,
                 holes=(2, 3))
    if "elasticity" in args.tasks:
        generate("elasticity2d", data["elasticity"], n=args.n, seed=0, workers=2, progress=False)
    print(f"data in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    results = []
    for task in args.tasks:
        for model in TASKS[task]:
            results.append(in_fresh_process(__file__, ["--out", str(out), "--epochs", str(args.epochs),
                                                       "--n", str(args.n), "--run", task, model]))
            print(json.dumps(results[-1]), file=sys.stderr)
    summary = {}
    by = {(r["task"], r["model"]): r for r in results}
    if ("poisson_unseen_shapes", "beno") in by and ("poisson_unseen_shapes", "gnn") in by:
        beno, gnn = by["poisson_unseen_shapes", "beno"], by["poisson_unseen_shapes", "gnn"]
        summary["beno_error_reduction_vs_gnn_on_unseen_shapes"] = 1 - beno["test_rel_l2_mean"] / gnn["test_rel_l2_mean"]
    print(json.dumps({"epochs": args.epochs, "results": results, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
