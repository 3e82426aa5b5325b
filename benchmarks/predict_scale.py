"""Prediction at scale: one trained model per family on the 3D potential-flow family, asked for 10k to 4M query
points around an unseen body. Each (model, query count, way) runs in a fresh process, so its peak RSS is its own.

"encode once" is `FieldOperator.predict` today: the input side (graphs, SDF, encoder, backbone) runs once and
each chunk of queries is decoded from its state. "per chunk" is the old way, every chunk re-running the whole
model (kept for comparison, up to `--per-chunk-max` queries). Encode seconds are the first chunk's prepare
(input side and that chunk's query graph) and the encoder; decode seconds the rest. Prints JSON and writes
`predict_scale.{json,md,png}` into `--out`.

    python benchmarks/predict_scale.py [--models gino fno transolver] [--queries 10000 100000 1000000 4000000]
                                       [--threads 2] [--train-budget 30] [--out out/predict_scale] [--quick]
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
MODELS = ["gino", "fno", "kdfno", "transolver", "mino", "gnot", "beno", "gnn"]
SETTINGS = {"gino": ["model.resolution=32"]}  # the reference: a 3D GINO at 32^3


def train_model(name: str, data: Path, out: Path, budget: float) -> dict:
    """Train `configs/<name>_potential3d.yaml` on `data` for `budget` CPU-seconds (the speed of prediction does
    not depend on how well the weights are trained, but the model is a real trained one)."""
    import torch

    torch.set_num_threads(1)
    from geoop.training import load_config, train

    settings = [f"data.root={data}", f"out={out}", f"train.budget={budget}", "train.clock=cpu",
                "train.progress=false", "train.device=cpu", *SETTINGS.get(name, [])]
    run = train(load_config(ROOT / "configs" / f"{name}_potential3d.yaml", settings))
    return {"test_rel_l2": run["test"]["rel_l2"] if run["test"] else None}


def predict_once(model_dir: Path, sample: Path, n_queries: int, way: str, threads: int, chunk: int) -> dict:
    """Predict `n_queries` random points in the sample's box; seconds to encode and decode, peak RSS."""
    import numpy as np
    import torch

    import geoop

    torch.set_num_threads(threads)
    operator = geoop.load_model(model_dir)
    geometry = geoop.load(sample)
    lo, hi = geometry.points.min(0), geometry.points.max(0)
    queries = np.random.default_rng(0).uniform(lo, hi, (n_queries, geometry.dim))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    spent = {"encode": 0.0, "decode": 0.0}
    first = [True]

    def timed(fn, phase=None):
        def run(*args, **kwargs):
            t = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[phase or ("encode" if first[0] else "decode")] += time.perf_counter() - t
            return out
        return run

    prepare, encode = operator.prepare, operator.encode
    operator.prepare = timed(prepare)
    operator.encode = timed(lambda *a: (encode(*a), first.__setitem__(0, False))[0], "encode")
    operator.decode = timed(operator.decode, "decode")
    operator.model.with_queries = timed(operator.model.with_queries, "decode")
    t0 = time.perf_counter()
    result = operator.predict(geometry, queries, chunk=chunk, encode_once=way == "encode once")
    seconds = time.perf_counter() - t0
    output_mb = sum(np.asarray(v).nbytes for v in result.point_data.values()) / 2**20
    return {"seconds": seconds, "encode_seconds": spent["encode"] if way == "encode once" else None,
            "decode_seconds": spent["decode"] if way == "encode once" else None,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rss_before_mb": rss_before, "output_mb": output_mb + queries.nbytes / 2**20}


def summarise(rows: list[dict]) -> dict:
    """Per model: decode-time growth 1M -> 4M and RSS at 4M against 1.5x the 100k peak plus the output."""
    out = {}
    for model in sorted({r["model"] for r in rows}):
        mine = {r["queries"]: r for r in rows if r["model"] == model and r["way"] == "encode once"}
        entry = {}
        if 1_000_000 in mine and 4_000_000 in mine:
            entry["decode_4M_over_1M"] = mine[4_000_000]["decode_seconds"] / mine[1_000_000]["decode_seconds"]
        if 100_000 in mine and 4_000_000 in mine:
            a, b = mine[100_000], mine[4_000_000]
            entry["rss_4M_mb"] = b["peak_rss_mb"]
            entry["rss_bound_mb"] = 1.5 * a["peak_rss_mb"] + b["output_mb"]
        old = {r["queries"]: r for r in rows if r["model"] == model and r["way"] == "per chunk"}
        if 1_000_000 in mine and 1_000_000 in old:
            entry["speedup_1M_vs_per_chunk"] = old[1_000_000]["seconds"] / mine[1_000_000]["seconds"]
        out[model] = entry
    return out


def table(result: dict) -> str:
    """Markdown: one row per (model, way, query count)."""
    lines = [f"Prediction at scale ({result['date']}, {result['machine']}, {result['threads']} threads, chunks of "
             f"{result['chunk']}): seconds (encode + decode) and peak RSS", "",
             "| model | way | queries | seconds | encode s | decode s | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    fmt = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
    for r in result["rows"]:
        lines.append(f"| {r['model']} | {r['way']} | {r['queries']:,} | {r['seconds']:.2f} | "
                     f"{fmt(r['encode_seconds'])} | {fmt(r['decode_seconds'])} | {r['peak_rss_mb']:.0f} |")
    return "\n".join(lines) + "\n"


def write_report(result: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    (out / "predict_scale.md").write_text(table(result))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    for model in sorted({r["model"] for r in rows}):
        for way, style in (("encode once", "-o"), ("per chunk", ":x")):
            mine = sorted((r for r in rows if r["model"] == model and r["way"] == way), key=lambda r: r["queries"])
            if mine:
                q = [r["queries"] for r in mine]
                ax_t.loglog(q, [r["seconds"] for r in mine], style, label=f"{model} ({way})")
                ax_m.semilogx(q, [r["peak_rss_mb"] for r in mine], style, label=f"{model} ({way})")
    ax_t.set(xlabel="query points", ylabel="seconds (wall)", title="prediction time")
    ax_m.set(xlabel="query points", ylabel="peak RSS (MB)", title="peak memory")
    ax_t.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "predict_scale.png", dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=MODELS)
    parser.add_argument("--queries", nargs="+", type=int, default=[10_000, 100_000, 1_000_000, 4_000_000])
    parser.add_argument("--per-chunk-max", type=int, default=1_000_000,
                        help="largest query count also predicted the old way (whole model per chunk)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=200_000)
    parser.add_argument("--train-budget", type=float, default=30.0, help="CPU-seconds of training per model")
    parser.add_argument("--samples", type=int, default=10, help="potential3d samples to make and train on")
    parser.add_argument("--out", type=Path, default=Path("out/predict_scale"))
    parser.add_argument("--quick", action="store_true", help="2 models, up to 100k queries: a smoke test")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "train":
            print(json.dumps(train_model(rest[0], Path(rest[1]), Path(rest[2]), float(rest[3]))))
        else:
            print(json.dumps(predict_once(Path(rest[0]), Path(rest[1]), int(rest[2]), rest[3], int(rest[4]),
                                          int(rest[5]))))
        return
    if args.quick:
        args.models, args.queries, args.train_budget, args.samples = ["gino", "transolver"], [10_000, 100_000], \
            5.0, 6
        args.per_chunk_max, args.chunk = 100_000, 40_000
    from geoop.data.generation import generate
    from geoop.data.manifest import read_manifest, sample_file

    args.out.mkdir(parents=True, exist_ok=True)
    data = args.out / "data"
    generate("potential3d", data, n=args.samples, seed=0, workers=2, progress=False)
    manifest = read_manifest(data)
    test = manifest.splits.get("test") or manifest.splits["train"]
    sample = data / sample_file(test[0])
    me = str(Path(__file__).resolve())
    rows = []
    for model in args.models:
        model_dir = args.out / "models" / model
        if not (model_dir / "model.safetensors").exists():
            in_fresh_process(me, ["--child", "train", model, str(data), str(model_dir), str(args.train_budget)])
        for n in args.queries:
            for way in ("encode once", "per chunk"):
                if way == "per chunk" and n > args.per_chunk_max:
                    continue
                row = in_fresh_process(me, ["--child", "predict", str(model_dir), str(sample), str(n), way,
                                            str(args.threads), str(args.chunk)])
                rows.append({"model": model, "queries": n, "way": way, **row})
                print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"date": time.strftime("%Y-%m-%d"), "machine": f"{platform.machine()} {platform.processor()}".strip(),
              "threads": args.threads, "chunk": args.chunk, "sample": sample.name, "rows": rows,
              "summary": summarise(rows)}
    (args.out / "predict_scale.json").write_text(json.dumps(result, indent=1))
    write_report(result, args.out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
