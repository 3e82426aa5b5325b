"""The user's prediction path on a box grid: `geoop predict --query-grid NXxNYxNZ` end to end (start-up, reading
the geometry, the grid and its inside mask, encoding, decoding, the trust report, the VTU with the grid's
hexahedra, the PNG), each grid size in a fresh process, as a user runs it: wall seconds from the command's
start to its exit, the stages' seconds (`FilePrediction.seconds`), peak RSS and the output's size.

Target (issue 33): 100x100x100 with a GINO at 32^3 on 2 threads in at most 10 s wall, peak RSS at most 1.5x the
46^3 run's plus the output arrays; 216^3 (10M queries) completes in bounded memory. `--code DIR` runs another
checkout of geoop (e.g. a `git worktree` of an older commit) for a before/after comparison on one machine.

    python benchmarks/predict_grid.py [--grids 46x46x46 100x100x100 216x216x216] [--threads 2]
        [--checkpoint RUN/model.safetensors --geometry FILE] [--code DIR] [--label NAME] [--out out/predict_grid]

Without --checkpoint, a GINO (resolution 32) is trained for 60 CPU-seconds on a potential3d dataset that
`benchmarks/predict_scale.py` makes, and the geometry is one of its test samples. Prints JSON; writes
`predict_grid.{json,md}` into --out (a label's row for a grid replaces the earlier one; other rows are kept).
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
from pathlib import Path

from common import in_fresh_process

ROOT = Path(__file__).resolve().parents[1]


def child(argv: list[str]) -> dict:
    """Run `geoop predict argv` in this process; its peak RSS and the stages it reports."""
    from geoop.cli import main

    out = Path(argv[argv.index("--json") + 1])
    if main(argv) != 0:
        raise SystemExit(f"geoop predict {' '.join(argv)} failed")
    report = json.loads(out.read_text())
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "stages": report.get("seconds")}


def one_grid(grid: str, checkpoint: Path, geometry: Path, out: Path, threads: int, code: Path | None) -> dict:
    """Predict on the grid `grid` in a fresh interpreter; wall seconds include its start-up."""
    vtu, report = out / f"grid_{grid}.vtu", out / f"grid_{grid}.json"
    argv = ["predict", "--checkpoint", str(checkpoint), "--geometry", str(geometry), "--query-grid", grid,
            "--out", str(vtu), "--json", str(report)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if code is not None:
        env["PYTHONPATH"] = str(code)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    row = json.loads(done.stdout.strip().splitlines()[-1])
    nodes = 1
    for n in grid.split("x"):
        nodes *= int(n)
    return {"grid": grid, "queries": nodes, "wall_seconds": wall, **row, "vtu_mb": vtu.stat().st_size / 2**20}


def default_model(out: Path) -> tuple[Path, Path]:
    """A GINO at 32^3 trained briefly on predict_scale's potential3d data, and one of its test samples."""
    from geoop.data.generation import generate
    from geoop.data.manifest import read_manifest, sample_file

    data = out / "data"
    generate("potential3d", data, n=10, seed=0, workers=2, progress=False)
    manifest = read_manifest(data)
    sample = data / sample_file((manifest.splits.get("test") or manifest.splits["train"])[0])
    model = out / "gino"
    if not (model / "model.safetensors").is_file():
        in_fresh_process(str(ROOT / "benchmarks" / "predict_scale.py"),
                         ["--child", "train", "gino", str(data), str(model), "60"])
    return model / "model.safetensors", sample


def table(result: dict) -> str:
    lines = [f"`geoop predict --query-grid` end to end ({result['machine']}, {result['threads']} threads): wall "
             "seconds from start to exit, the stages, peak RSS", "",
             "| code | grid | queries | wall s | read s | grid + mask s | predict s | write s | picture s | "
             "peak RSS MB | VTU MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        stages = r.get("stages") or {}
        cells = [f"{stages[k]:.2f}" if k in stages else "-" for k in ("read", "queries", "predict", "write", "picture")]
        lines.append(f"| {r['label']} | {r['grid']} | {r['queries']:,} | {r['wall_seconds']:.1f} | "
                     + " | ".join(cells) + f" | {r['peak_rss_mb']:.0f} | {r['vtu_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grids", nargs="+", default=["46x46x46", "100x100x100", "216x216x216"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--checkpoint", type=Path)
    ap.add_argument("--geometry", type=Path)
    ap.add_argument("--code", type=Path, help="another checkout of geoop to run (before/after)")
    ap.add_argument("--label", default="this checkout")
    ap.add_argument("--out", type=Path, default=Path("out/predict_grid"))
    ap.add_argument("--child", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    checkpoint, geometry = (args.checkpoint, args.geometry) if args.checkpoint else default_model(args.out)
    path = args.out / "predict_grid.json"
    result = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    result.update(machine=f"{platform.machine()}, {os.cpu_count()} cores", threads=args.threads,
                  date=time.strftime("%Y-%m-%d"))
    for grid in args.grids:  # a (label, grid) row replaces its earlier measurement; the others stay
        row = {"label": args.label, **one_grid(grid, checkpoint, geometry, args.out, args.threads, args.code)}
        rows = [r for r in result["rows"] if (r["label"], r["grid"]) != (args.label, grid)] + [row]
        labels = list(dict.fromkeys(r["label"] for r in result["rows"] + [row]))
        result["rows"] = sorted(rows, key=lambda r: (labels.index(r["label"]), r["queries"]))
        print(json.dumps(row), file=sys.stderr)
        path.write_text(json.dumps(result, indent=1))
    (args.out / "predict_grid.md").write_text(table(result))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
