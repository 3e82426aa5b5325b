"""Training memory against dataset size: peak RSS and seconds per epoch of GINO (configs/gino_elasticity2d.yaml)
on 250, 1000 and 4000 samples of elasticity2d, with the prepared structures on disk (`train.cache=disk`, the
default) and all in memory (`train.cache=memory`, the old way), each run in a fresh process with one torch
thread. Target: at 4000 samples at most 1.3x the peak at 250, and an epoch no slower than in memory.

Datasets: one of the largest size is made with geoop's solver; the smaller ones are its first samples (their
manifests list a subset of the same sample files). Prints JSON and writes `train_memory.{json,md}` into --out.

    python benchmarks/train_memory.py [--sizes 250 1000 4000] [--epochs 2] [--out out/train_memory]
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

from common import in_fresh_process

ROOT = Path(__file__).resolve().parents[1]


def subset(full: Path, n: int, out: Path) -> Path:
    """A dataset folder `out` of the first `n` samples of `full` (same files, splits filtered)."""
    from dataclasses import replace

    from geoop.data.manifest import read_manifest

    manifest = read_manifest(full)
    keep = {r["index"] for r in manifest.samples if r["index"] < n}
    out.mkdir(parents=True, exist_ok=True)
    link = out / "samples"
    if not link.exists():
        link.symlink_to((full / "samples").resolve(), target_is_directory=True)
    replace(manifest, samples=[r for r in manifest.samples if r["index"] in keep], n_requested=n,
            splits={k: [i for i in v if i in keep] for k, v in manifest.splits.items()}).write(out)
    return out


def run(data: Path, out: Path, cache: str, epochs: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from geoop.training import load_config, train

    config = load_config(ROOT / "configs" / "gino_elasticity2d.yaml",
                         [f"data.root={data}", f"out={out}", f"train.epochs={epochs}", "train.budget=null",
                          f"train.cache={cache}", "train.progress=false", "train.device=cpu"])
    t0 = time.process_time()
    result = train(config)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    seconds = [h["seconds"] for h in result["history"]]
    return {"peak_rss_mb": usage.ru_maxrss / 1024, "cpu_seconds": time.process_time() - t0,
            "system_seconds": usage.ru_stime, "first_epoch_seconds": seconds[0],
            "later_epoch_seconds": sum(seconds[1:]) / max(1, len(seconds) - 1),
            "train_samples": len(json.loads((data / "manifest.json").read_text())["splits"]["train"])}


def table(result: dict) -> str:
    """Markdown: one row per (dataset size, cache)."""
    lines = [f"GINO elasticity2d training ({result['date']}, 1 thread): peak RSS and seconds per epoch", "",
             "| samples | train samples | cache | peak RSS MB | epoch 1 s | later epochs s | "
             "system s |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['samples']} | {r['train_samples']} | {r['cache']} | {r['peak_rss_mb']:.0f} | "
              f"{r['first_epoch_seconds']:.1f} | {r['later_epoch_seconds']:.1f} | {r['system_seconds']:.1f} |"
              for r in result["rows"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[250, 1000, 4000])
    parser.add_argument("--caches", nargs="+", default=["disk", "memory"])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (the caches are built before the first)")
    parser.add_argument("--out", type=Path, default=Path("out/train_memory"))
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data, out, cache, epochs = args.child
        print(json.dumps(run(Path(data), Path(out), cache, int(epochs))))
        return
    from geoop.data.generation import generate

    full = args.out / "data" / f"elasticity2d_{max(args.sizes)}"
    generate("elasticity2d", full, n=max(args.sizes), seed=0, workers=2, progress=False)
    me, rows = str(Path(__file__).resolve()), []
    for n in sorted(args.sizes):
        data = full if n == max(args.sizes) else subset(full, n, args.out / "data" / f"elasticity2d_{n}")
        for cache in args.caches:
            out = args.out / "runs" / f"{cache}_{n}"
            row = in_fresh_process(me, ["--child", str(data), str(out), cache, str(args.epochs)])
            rows.append({"samples": n, "cache": cache, **row})
            print(json.dumps(rows[-1]), file=sys.stderr)
    peak = {(r["samples"], r["cache"]): r["peak_rss_mb"] for r in rows}
    small, large = min(args.sizes), max(args.sizes)
    summary = {c: peak[(large, c)] / peak[(small, c)] for c in args.caches if (large, c) in peak}
    result = {"date": time.strftime("%Y-%m-%d"), "machine": platform.machine(), "rows": rows,
              f"peak_{large}_over_{small}": summary}
    (args.out / "train_memory.json").write_text(json.dumps(result, indent=1))
    (args.out / "train_memory.md").write_text(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
