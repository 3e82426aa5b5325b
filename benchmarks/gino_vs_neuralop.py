"""Train-step benchmark: geoop's GINO against neuraloperator 2.0.0's GINO (stock, as `pip install
neuraloperator==2.0.0` gives it), side by side, each configuration in a fresh process with 1 torch thread.

    pip install neuraloperator==2.0.0
    python benchmarks/gino_vs_neuralop.py [--quick] [--steps 3] [--warmup 1]

Problem: n points on a closed bumpy ellipsoid inside [0.05, 0.95]^3 carrying a scalar field, the same number
of other surface points as queries, batch 1; one step = forward + backward + AdamW. Both models: 4 FNO layers,
64 channels, 16 modes per axis, kernel MLPs [80, 80, 80] and [512, 256], radius 0.033, a 32^3 latent grid.
neuraloperator searches neighbors inside every forward, so its step includes the search; geoop builds its
graphs once per geometry (`setup_s`, reported separately) and reuses them, which is how it trains.
Configurations: (a) 3,600 points, (b) 20,000 points. Prints JSON: per library the median step wall and process
CPU seconds, peak RSS, parameter count and neighbor coverage; `speedup` (anchor CPU s / geoop CPU s) and
`memory_ratio` (geoop peak RSS / anchor peak RSS).
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import resource
import statistics
import time

import numpy as np

RADIUS, RES = 0.033, 32


def surface_problem(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Points, their field, query points and the query targets on a bumpy 2:1:0.7 ellipsoid."""
    import trimesh

    from geoop import Geometry, sample_surface

    sphere = trimesh.creation.icosphere(5)
    v = sphere.vertices
    bump = 1 + 0.08 * np.sin(3 * v[:, 0]) * np.cos(4 * v[:, 1]) * np.sin(2 * v[:, 2])
    v = v * bump[:, None] * [0.42, 0.21, 0.15] + 0.5
    body = Geometry(v, {"triangle": sphere.faces})
    pts = sample_surface(body, n, seed=seed).points
    queries = sample_surface(body, n, seed=seed + 1).points
    field = lambda p: np.sin(4 * p[:, 0]) * np.cos(3 * p[:, 1]) + p[:, 2]  # noqa: E731
    target = np.cos(5 * queries[:, 0]) * queries[:, 1] + field(queries)
    return pts, field(pts)[:, None], queries, target[:, None]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _time_steps(step, steps: int, warmup: int) -> tuple[float, float]:
    walls, cpus = [], []
    for i in range(warmup + steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        if i >= warmup:
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus)


def run_geoop(n: int, steps: int, warmup: int) -> dict:
    import torch

    from geoop.models import GINO

    pts, f, q, target = (torch.tensor(a, dtype=torch.float32) for a in surface_problem(n))
    torch.manual_seed(0)
    model = GINO(3, 1, 1, resolution=RES, hidden=64, modes=16, n_layers=4, in_gno_hidden=(80, 80, 80),
                 out_gno_hidden=(512, 256), projection_hidden=256, in_radius=RADIUS, out_radius=RADIUS, use_sdf=False,
                 grid_bounds=((0, 0, 0), (1, 1, 1)))  # the anchor's latent grid
    t0 = time.perf_counter()
    graphs = model.prepare(pts, queries=q)
    setup = time.perf_counter() - t0
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        loss = (model(f, graphs) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    wall, cpu = _time_steps(step, steps, warmup)
    return {"step_wall_s": wall, "step_cpu_s": cpu, "setup_s": setup, "peak_rss_mb": _peak_mb(),
            "parameters": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()),
            "empty_latent_fraction": graphs.in_empty / len(graphs.grid.points),
            "empty_query_fraction": graphs.out_empty / len(q), "edges": [graphs.in_edges.shape[1],
                                                                       graphs.out_edges.shape[1]]}


def run_neuralop(n: int, steps: int, warmup: int) -> dict:
    import torch
    from neuralop.models import GINO

    pts, f, q, target = (torch.tensor(a, dtype=torch.float32) for a in surface_problem(n))
    torch.manual_seed(0)
    model = GINO(in_channels=1, out_channels=1, gno_coord_dim=3, in_gno_radius=RADIUS, out_gno_radius=RADIUS,
                 fno_n_modes=(16, 16, 16), fno_hidden_channels=64, fno_n_layers=4,
                 in_gno_channel_mlp_hidden_layers=[80, 80, 80], out_gno_channel_mlp_hidden_layers=[512, 256])
    t = torch.linspace(0, 1, RES)
    latent = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1)[None]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        out = model(input_geom=pts[None], latent_queries=latent, output_queries=q[None], x=f[None])
        loss = (out[0] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    wall, cpu = _time_steps(step, steps, warmup)
    with torch.no_grad():  # how many queries see no latent node at this radius (the anchor says nothing)
        d = torch.cdist(q, latent.reshape(-1, 3))
        empty_q = float((d.min(dim=1).values > RADIUS).float().mean())
        empty_l = float((torch.cdist(latent.reshape(-1, 3), pts).min(dim=1).values > RADIUS).float().mean())
    return {"step_wall_s": wall, "step_cpu_s": cpu, "setup_s": 0.0, "peak_rss_mb": _peak_mb(),
            "parameters": sum(p.numel() * (2 if p.is_complex() else 1) for p in model.parameters()),
            "empty_latent_fraction": empty_l, "empty_query_fraction": empty_q}


def _child(name, n, steps, warmup, queue):
    import sys

    import torch

    sys.stdout = sys.stderr  # neuraloperator prints a warning on every call; keep stdout for the JSON
    torch.set_num_threads(1)
    queue.put((run_geoop if name == "geoop" else run_neuralop)(n, steps, warmup))


def measure(name: str, n: int, steps: int, warmup: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(name, n, steps, warmup, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="configuration (a) only")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--sizes", type=int, nargs="+", default=None)
    args = ap.parse_args()
    sizes = args.sizes or ([3600] if args.quick else [3600, 20000])
    out = {"grid": RES, "radius": RADIUS, "threads": 1, "steps": args.steps, "warmup": args.warmup, "results": {}}
    for n in sizes:
        row = {"geoop": measure("geoop", n, args.steps, args.warmup),
               "neuralop": measure("neuralop", n, args.steps, args.warmup)}
        row["speedup"] = row["neuralop"]["step_cpu_s"] / row["geoop"]["step_cpu_s"]
        row["speedup_wall"] = row["neuralop"]["step_wall_s"] / row["geoop"]["step_wall_s"]
        row["memory_ratio"] = row["geoop"]["peak_rss_mb"] / row["neuralop"]["peak_rss_mb"]
        out["results"][f"{n}_points_{RES}^3"] = row
        print(json.dumps(row), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
