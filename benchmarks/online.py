"""Training while the solver runs against the usual generate-then-train, at equal wall time on this machine
(the issue "train while the solver runs"), on airfoil2d (OpenFOAM RANS, ~25 CPU-s a case):

- `offline`: `geoop data make` with two solver processes for half the budget, then `geoop train` (one torch
  thread, wall-clock budget) on what was made for the other half;
- `online_random`: `geoop train --online airfoil2d`, one solver worker beside a one-thread trainer, random designs;
- `online_uncertainty`: the same, each next design the one of 4 random candidates that the latest model expects
  to predict worst (its variance head; candidates meshed, not solved);
- `online_diversity`: the same, the candidate farthest from every design made (not in the default run).

Every arm trains the same config (`configs/kdfno_airfoil2d.yaml` with a variance head, so only the data
differ) with the first `--val` (10) good samples of the same seed as its validation split, and is scored on the test
split of a held-out airfoil2d dataset (the first `--n-test` of `--test-data`'s, or `--n-test` samples made with
another seed into OUT/test). The target error of the case count is online_random's final validation error (the issue's
definition); each arm's curve says after how many solver cases, and when, it first reached it.

    python benchmarks/online.py [--minutes 20] [--arms offline online_random online_uncertainty]
                                [--test-data DIR] [--n-test 30] [--out out/online]

An arm whose `result.json` exists is not rerun (a stopped benchmark resumes with the next arm; an arm stopped
midway starts over: its clock would not be honest). Writes OUT/online.json (printed too), OUT/online.md and
OUT/online.png (validation error and cases made against wall time).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "kdfno_airfoil2d"
ARMS = {"offline": None, "online_random": "random", "online_uncertainty": "uncertainty",
        "online_diversity": "diversity"}
DEFAULT_ARMS = ["offline", "online_random", "online_uncertainty"]
#: the arms' seed, and the test set's when one is made (datasets made with geoop's default seed 0 can be the test
#: set: `--test-data`)
SEED, TEST_SEED = 1, 7
COMMON = ["train.uncertainty=variance", "threads=1", "train.progress=false"]


def geoop(*args: str, log: Path, timeout: float | None = None) -> int:
    """Run the geoop CLI (this checkout) with output to `log`; after `timeout` seconds it is stopped as Ctrl-C
    would (SIGINT: a generation keeps every finished sample). Returns the exit code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(log, "a") as out:
        proc = subprocess.Popen([sys.executable, "-m", "geoop", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=ROOT,  # Ctrl-C as usual even under nohup/&, which ignore SIGINT
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            return proc.wait()


def overrides(items: list[str]) -> list[str]:
    return [a for item in items for a in ("--set", item)]


def offline(arm: Path, budget: float, val: int) -> dict:
    """Generate for half the budget with two processes, then train for what is left of it."""
    from geoop.data.generation import generate
    from geoop.data.manifest import read_manifest
    from geoop.data.splits import resplit

    data, run = arm / "data", arm / "run"
    started = time.perf_counter()
    geoop("data", "make", "airfoil2d", "--n", "100000", "--seed", str(SEED), "--workers", "2", "--out", str(data),
          log=arm / "log.txt", timeout=budget / 2)
    if not (data / "manifest.json").is_file():
        raise SystemExit(f"offline: no sample was made in half the budget ({budget / 2:.0f} s); raise --minutes")
    made = read_manifest(data)
    generate("airfoil2d", data, n=len(made.samples), seed=SEED, progress=False)  # completes the manifest
    good = [r["index"] for r in sorted(read_manifest(data).samples, key=lambda r: r["index"])
            if r["values"].get("converged", 1.0) != 0.0]
    if len(good) <= val:
        raise SystemExit(f"offline: {len(good)} good samples in half the budget, none left to train on after the "
                         f"{val} for validation; raise --minutes")
    resplit(data, {"val": good[:val], "train": good[val:], "test": []})
    generated = time.perf_counter() - started
    geoop("train", "--config", CONFIG, "--out", str(run), *overrides(
        [f"data.root={data}", f"train.budget={budget - generated:.0f}", "train.clock=wall", *COMMON]),
          log=arm / "log.txt")
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for h in history:
        h["wall_seconds"] += generated
        h["samples"] = len(good) - val
    return {"history": history, "generation_seconds": generated}


def online(arm: Path, budget: float, val: int, select: str) -> dict:
    """`geoop train --online` for the budget."""
    run = arm / "run"
    geoop("train", "--online", "airfoil2d", "--config", CONFIG, "--workers", "1", "--select", select,
          "--out", str(run), *overrides([f"data.root={arm / 'data'}", f"train.budget={budget:.0f}",
                                         f"online.val={val}", f"online.seed={SEED}", "online.validate_every=60",
                                         *COMMON]), log=arm / "log.txt")
    return {"history": [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]}


def test_data(args: argparse.Namespace) -> Path:
    """The test set: the first `--n-test` samples of the test split of `--test-data` (a view: its manifest with
    that split, its samples linked), or `--n-test` samples made with another seed."""
    from geoop.data.manifest import read_manifest

    folder = Path(args.out) / "test"
    if args.test_data:
        source = Path(args.test_data).resolve()
        manifest = read_manifest(source)
        if manifest.seed == SEED:
            raise SystemExit(f"{source} was made with seed {SEED}, the arms' seed: its designs would be trained on")
        manifest.splits = {"train": [], "val": [], "test": manifest.splits["test"][:args.n_test]}
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "samples").exists():
            (folder / "samples").symlink_to(source / "samples", target_is_directory=True)
        manifest.write(folder)
        return folder
    geoop("data", "make", "airfoil2d", "--n", str(args.n_test), "--seed", str(TEST_SEED), "--workers", "2",
          "--fractions", "0,0,1", "--out", str(folder), log=Path(args.out) / "test_log.txt")
    return folder


def reached(history: list[dict], target: float) -> dict | None:
    """The first record whose validation error is at most `target`: its wall seconds and cases made."""
    for h in history:
        if h.get("val_rel_l2", np.inf) <= target:
            return {"wall_seconds": h["wall_seconds"], "samples": h["samples"]}
    return None


def summarise(results: dict) -> dict:
    """The issue's two comparisons from the arms' curves."""
    out: dict = {}
    final = {k: min(h["val_rel_l2"] for h in r["history"] if "val_rel_l2" in h) for k, r in results.items()}
    if "online_random" in results:
        target = final["online_random"]
        out["target_val_rel_l2"] = target
        out["to_target"] = {k: reached(r["history"], target) for k, r in results.items()}
    if "offline" in results and "online_random" in results:
        when = reached(results["online_random"]["history"], final["offline"])
        end = results["offline"]["history"][-1]["wall_seconds"]
        out["online_reaches_offline_error"] = None if when is None else {
            "wall_seconds": when["wall_seconds"], "offline_wall_seconds": end,
            "sooner": 1.0 - when["wall_seconds"] / end}
    return out


def table(record: dict) -> str:
    rows = ["| arm | training cases | best val rel. L2 | test rel. L2 (mean) | U | p | cp | cf | Cl MAE "
            "| cases to target |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    to_target = record["summary"].get("to_target", {})
    for name, r in record["arms"].items():
        t, f = r["test"], r["test"]["fields"]
        cl = t.get("forces", {}).get("cl", {}).get("mae")
        hit = to_target.get(name)
        rows.append(f"| {name} | {r['history'][-1]['samples']} | "
                    f"{min(h['val_rel_l2'] for h in r['history'] if 'val_rel_l2' in h):.4f} | {t['rel_l2']:.4f} | "
                    + " | ".join(f"{f[k]['rel_l2']:.4f}" if k in f else "-" for k in ("U", "p", "cp", "cf"))
                    + f" | {'-' if cl is None else f'{cl:.4f}'} | {'not reached' if hit is None else hit['samples']} |")
    return "\n".join(rows) + "\n"


def plot(record: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in record["arms"].items():
        h = [x for x in r["history"] if "val_rel_l2" in x]
        t = [x["wall_seconds"] / 60 for x in h]
        ax.plot(t, [x["val_rel_l2"] for x in h], marker=".", label=name)
        bx.plot(t, [x["samples"] for x in h], marker=".", label=name)
    ax.set(xlabel="wall minutes", ylabel="validation rel. L2", yscale="log", title="error against wall time")
    bx.set(xlabel="wall minutes", ylabel="training cases made", title="cases against wall time")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0, help="wall budget of every arm")
    ap.add_argument("--arms", nargs="+", default=DEFAULT_ARMS, choices=list(ARMS))
    ap.add_argument("--test-data", default=None, help="a made airfoil2d dataset whose test split scores the arms")
    ap.add_argument("--n-test", type=int, default=30, help="test samples (made, or the first of --test-data's)")
    ap.add_argument("--val", type=int, default=10, help="validation samples (the first good ones of the seed)")
    ap.add_argument("--out", default="out/online")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from geoop.training.run import evaluate_checkpoint

    test = test_data(args)
    budget = 60.0 * args.minutes
    results = {}
    for name in args.arms:
        arm = out / name
        done = arm / "result.json"
        if not done.is_file():
            shutil.rmtree(arm, ignore_errors=True)
            arm.mkdir(parents=True)
            result = offline(arm, budget, args.val) if ARMS[name] is None else \
                online(arm, budget, args.val, ARMS[name])
            metrics = evaluate_checkpoint(arm / "run" / "model.safetensors", test, "test")
            metrics.pop("trust", None)  # per-sample records: the benchmark keeps the errors
            result["test"] = metrics
            done.write_text(json.dumps(result, indent=1, default=float))
        results[name] = json.loads(done.read_text())
        print(f"{name}: {results[name]['history'][-1]['samples']} cases, test rel. L2 "
              f"{results[name]['test']['rel_l2']:.4f}", flush=True)
    record = {"date": str(date.today()), "machine": f"{os.cpu_count()} cores", "minutes": args.minutes, "val": args.val,
              "config": CONFIG, "arms": results, "summary": summarise(results),
              "test_data": f"the first {args.n_test} of the test split of " + (
                  f"{Path(args.test_data).name} (seed 0)" if args.test_data else f"a set made with seed {TEST_SEED}")}
    (out / "online.json").write_text(json.dumps(record, indent=1, default=float))
    (out / "online.md").write_text(table(record))
    plot(record, out / "online.png")
    print(json.dumps(record["summary"], indent=1))
    print(table(record))


if __name__ == "__main__":
    main()
