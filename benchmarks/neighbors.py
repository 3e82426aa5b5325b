"""Radius-search benchmark: every geoop backend against sklearn's KDTree (and torch_cluster when installed),
on uniform and clustered clouds with ~24 neighbors per point, each measured in a fresh process.

    python benchmarks/neighbors.py [--sizes 10000 100000 1000000] [--repeats 3] [--device cpu|cuda]

Prints one JSON document: per cloud and size, each method's median wall time, process CPU time, pair count and
peak RSS increase, and `default_vs_best_anchor` (geoop default time / fastest anchor time; < 1 is faster).
All methods get the same Morton-sorted float64 points (geoop's loader sorts this way)."""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np


def make_cloud(kind: str, n: int, seed: int = 0) -> np.ndarray:
    """`(n, 3)` points in the unit cube: uniform, or 80% in 8 small Gaussian clusters."""
    from geoop.geometry.ordering import morton_order

    rng = np.random.default_rng(seed)
    if kind == "uniform":
        x = rng.random((n, 3))
    else:
        centers = rng.random((8, 3))
        k = int(0.8 * n)
        x = np.concatenate([centers[rng.integers(0, 8, k)] + rng.normal(scale=0.03, size=(k, 3)),
                            rng.random((n - k, 3))])
    return x[morton_order(x)]


def radius_for(x: np.ndarray, neighbors: int = 24) -> float:
    """Radius giving about `neighbors` neighbors per point on average (measured on a subsample)."""
    from scipy.spatial import cKDTree

    sample = x[np.random.default_rng(1).choice(len(x), min(len(x), 2000), replace=False)]
    d, _ = cKDTree(x).query(sample, k=neighbors + 1)
    return float(np.median(d[:, -1]))


def run_method(method: str, x: np.ndarray, r: float, device: str) -> int:
    import torch

    if method.startswith("geoop:"):
        from geoop.graph import radius_search

        t = torch.from_numpy(x).to(device)
        res = radius_search(t, r, backend=method.split(":")[1])
        if device == "cuda":
            torch.cuda.synchronize()
        return len(res)
    if method == "sklearn":
        from sklearn.neighbors import KDTree

        ind = KDTree(x).query_radius(x, r)
        return int(sum(len(i) for i in ind))  # flattening counted as in a real pair list below
    if method == "torch_cluster":
        import torch_cluster

        t = torch.from_numpy(x).to(device)
        return int(torch_cluster.radius_graph(t, r, max_num_neighbors=10**6, loop=True).shape[1])
    raise ValueError(method)


def _child(method, kind, n, device, queue):
    import sklearn.neighbors  # noqa: F401 - imports stay out of the timing
    import torch

    import geoop.graph  # noqa: F401

    torch.set_num_threads(1)
    x = make_cloud(kind, n)
    r = radius_for(x)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0, c0 = time.perf_counter(), time.process_time()
    pairs = run_method(method, x, r, device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    queue.put({"wall_s": wall, "cpu_s": cpu, "pairs": pairs, "peak_rss_increase_mb": peak, "radius": r})


def measure(method: str, kind: str, n: int, device: str, repeats: int) -> dict:
    ctx = mp.get_context("spawn")
    runs = []
    for _ in range(repeats):
        q = ctx.Queue()
        p = ctx.Process(target=_child, args=(method, kind, n, device, q))
        p.start()
        runs.append(q.get())
        p.join()
    return {"wall_s": statistics.median(r["wall_s"] for r in runs),
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "pairs": runs[0]["pairs"], "peak_rss_increase_mb": max(r["peak_rss_increase_mb"] for r in runs),
            "radius": runs[0]["radius"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--clouds", nargs="+", default=["uniform", "clustered"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--cell-list-max", type=int, default=200_000,
                    help="largest size for the torch cell list on CPU (it is the GPU backend)")
    args = ap.parse_args()
    try:
        import torch_cluster  # noqa: F401
        anchors = ["sklearn", "torch_cluster"]
    except ImportError:
        anchors = ["sklearn"]
    ours = ["geoop:cell_list"] if args.device == "cuda" else ["geoop:kdtree", "geoop:cell_list"]
    if args.device == "cuda":
        anchors = [a for a in anchors if a == "torch_cluster"]
    default = "geoop:cell_list" if args.device == "cuda" else "geoop:kdtree"
    results = {}
    for kind in args.clouds:
        for n in args.sizes:
            row = {}
            for method in ours + anchors:
                if method == "geoop:cell_list" and args.device == "cpu" and n > args.cell_list_max:
                    continue
                row[method] = measure(method, kind, n, args.device, args.repeats)
            best = min((row[a]["wall_s"] for a in anchors if a in row), default=math.nan)
            row["default_vs_best_anchor"] = row[default]["wall_s"] / best
            results[f"{kind}_{n}"] = row
    print(json.dumps({"device": args.device, "default_backend": default, "anchors": anchors,
                      "threads": 1, "results": results}, indent=1))


if __name__ == "__main__":
    main()
