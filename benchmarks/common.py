"""What the training benchmarks share: train one configuration in a fresh process (1 torch thread, so its peak
memory and timings are its own) and report its figures as one JSON line."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def train_and_measure(settings: list[str], out: Path, test_data: Path | None = None) -> dict:
    """Train `settings` (config overrides) into `out` in this process; test on the run's test split, or on
    every sample of `test_data` when given. Epoch 1 is left out of seconds per epoch (it builds the caches)."""
    import torch

    torch.set_num_threads(1)
    from geoop.training import load_config, load_model, train
    from geoop.training.run import evaluate_checkpoint

    t0 = time.perf_counter()
    result = train(load_config(None, settings + [f"out={out}", "train.progress=false", "train.device=cpu"]))
    test = result["test"] if test_data is None else evaluate_checkpoint(out / "model.safetensors", test_data, "all")
    seconds = [h["seconds"] for h in result["history"]]
    return {"test_rel_l2": {k: v["rel_l2"] for k, v in test["fields"].items()}, "test_rel_l2_mean": test["rel_l2"],
            "test_samples": test["samples"],
            "seconds_per_epoch": sum(seconds[1:]) / max(1, len(seconds) - 1), "first_epoch_seconds": seconds[0],
            "total_seconds": time.perf_counter() - t0,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "parameters": sum(p.numel() for p in load_model(out).parameters()), "epochs": len(seconds)}


def in_fresh_process(script: str, args: list[str]) -> dict:
    """Run `script --run ...` in a new interpreter and parse the JSON line it prints last."""
    done = subprocess.run([sys.executable, script, *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])
