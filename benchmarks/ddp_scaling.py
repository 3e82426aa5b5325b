"""Training throughput (samples/s) of `geoop train` with 1 and 2 data-parallel processes at the same global
batch (1 x 4 samples vs 2 x 2), on a Poisson dataset made by the reference solver. Epoch 1 is left out (it
builds each rank's graph caches). Prints JSON.

    python benchmarks/ddp_scaling.py [--n 64] [--epochs 4] [--global-batch 4] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

MODEL = ["model.name=gino", "model.resolution=24", "model.hidden=32", "model.modes=8", "model.n_layers=3",
         "model.in_gno_hidden=[32,32]", "model.out_gno_hidden=[64,64]", "model.projection_hidden=64"]


def run(data: Path, out: Path, nproc: int, epochs: int, global_batch: int, device: str) -> dict:
    settings = MODEL + [f"data.root={data}", f"train.epochs={epochs}", f"train.batch_size={global_batch // nproc}",
                        f"train.shards={nproc}", "train.progress=false", f"train.device={device}"]
    cmd = [sys.executable, "-m", "geoop", "train", "--out", str(out), "--nproc", str(nproc)]
    for s in settings:
        cmd += ["--set", s]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    n_train = len(json.loads((data / "manifest.json").read_text())["splits"]["train"])
    seconds = [h["seconds"] for h in history[1:]]
    return {"processes": nproc, "samples_per_second": n_train * len(seconds) / sum(seconds),
            "seconds_per_epoch": sum(seconds) / len(seconds), "wall_seconds": time.perf_counter() - t0,
            "final_train_loss": history[-1]["train_loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/bench_ddp")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--global-batch", type=int, default=4)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from geoop.data import generate

    out = Path(args.out)
    generate("poisson2d", out / "data", n=args.n, seed=0, workers=2, progress=False)
    import torch

    counts = (1, 2) if args.device == "cpu" else tuple(range(1, min(2, torch.cuda.device_count()) + 1))
    results = []
    for nproc in counts:  # one process per GPU: on a 1-GPU machine only the single-process figure is measured
        run_dir = out / f"run_{nproc}"
        shutil.rmtree(run_dir, ignore_errors=True)
        results.append(run(out / "data", run_dir, nproc, args.epochs, args.global_batch, args.device))
    report = {"device": args.device, "cores": os.cpu_count(), "global_batch": args.global_batch, "results": results}
    if len(results) == 2:
        report["speedup_2_vs_1"] = results[1]["samples_per_second"] / results[0]["samples_per_second"]
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
