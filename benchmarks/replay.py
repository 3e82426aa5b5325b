"""Does a refactoring change any figure? Train the same small runs with this checkout and with another git
revision (a temporary worktree of it) on the same generated data, and compare the training histories and test
errors bit for bit (training on a CPU is deterministic).

    python benchmarks/replay.py --against 76f5790 [--out out/replay]

Prints JSON {"identical": bool, "this": {...}, "against": {...}} and writes it to OUT/replay.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: the runs: registered models with small options, three epochs each, on 24 Poisson samples
RUNS = {"fno": ["model.hidden=8", "model.modes=4", "model.n_layers=1"],
        "gino": ["model.resolution=8", "model.hidden=8", "model.modes=3", "model.n_layers=1"],
        "transolver": ["model.hidden=8", "model.layers=1", "model.heads=2", "model.slices=4"]}


def train_runs(data: str, out: str) -> dict:
    """Histories and test errors of the `RUNS` with whichever geoop this interpreter imports."""
    from geoop.training import load_config, train

    results = {}
    for name, options in RUNS.items():
        config = load_config(None, [f"data.root={data}", f"out={out}/{name}", f"model.name={name}",
                                    "train.epochs=3", "train.progress=false", "threads=1", "train.device=cpu",
                                    "data.lift={u: g}"] + options)
        run = train(config)
        results[name] = {"loss": [h["train_loss"] for h in run["history"]],
                         "val": [h.get("val_rel_l2") for h in run["history"]], "test": run["test"]["rel_l2"]}
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="git revision to compare with")
    ap.add_argument("--out", default=str(ROOT / "out" / "replay"))
    ap.add_argument("--train", nargs=2, metavar=("DATA", "OUT"), help=argparse.SUPPRESS)  # one side, in a child
    args = ap.parse_args()
    if args.train:
        print("RESULT " + json.dumps(train_runs(*args.train)))
        return
    from geoop.data import generate

    out = Path(args.out)
    data = out / "data"
    if not (data / "manifest.json").is_file():
        generate("poisson2d", data, n=24, seed=3, workers=2, progress=False)
    sides = {}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.against],
                       check=True, capture_output=True)
        try:
            for side, code in (("this", ROOT), ("against", tree)):
                env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"}
                done = subprocess.run([sys.executable, __file__, "--against", args.against, "--train", str(data),
                                       str(out / side)], capture_output=True, text=True, env=env, cwd=code)
                lines = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")]
                if not lines:
                    raise SystemExit(f"the {side} side failed:\n{done.stderr[-3000:]}")
                sides[side] = json.loads(lines[-1][7:])
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    report = {"identical": sides["this"] == sides["against"], "against": args.against, **sides}
    out.mkdir(parents=True, exist_ok=True)
    (out / "replay.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
