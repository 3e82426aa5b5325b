"""The main job (`geoop demo`, the README's first command): make a Poisson dataset with the reference solver,
train the most accurate model that fits its time on it (the single-grid FNO, for a budget of CPU-seconds),
evaluate on the test split, and predict on a geometry the model never saw at query points that are not mesh
nodes, comparing with the finite-element solution there. Everything lands in one folder."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from geoop.data.families import get_family
from geoop.data.generation import generate
from geoop.data.manifest import write_json_atomic
from geoop.geometry.geometry import Geometry
from geoop.geometry.sampling import sample_volume
from geoop.training.config import load_config
from geoop.training.run import load_model, train
from geoop.viz.plot import plot_fields

#: The embedded default: about 1 minute of data and 4 minutes of training on one CPU core. The recipe is the
#: shipped configs/fno_poisson2d.yaml (the best model of benchmarks/accuracy.py that fits the time) with a
#: smaller budget and the Dirichlet data lifted, which pays at this budget. Mirror symmetries: validation 0.129
#: against 0.146.
DEFAULT = {"n": 400, "seed": 0, "queries": 5000, "budget": 240.0, "config": "fno_poisson2d",
           "overrides": ["data.lift={u: g}", "train.device=cpu", "threads=1"]}


def _relative_l2(pred: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(pred - truth) / max(np.linalg.norm(truth), 1e-300))


def run_main_job(out: str | Path, n: int = DEFAULT["n"], epochs: int | None = None, seed: int = DEFAULT["seed"],
                 queries: int = DEFAULT["queries"], overrides: list[str] | None = None,
                 progress: bool = True, budget: float = DEFAULT["budget"]) -> dict[str, Any]:
    """Data -> training (for `budget` CPU-seconds, or `epochs` if that ends first) -> evaluation -> prediction
    at unseen points; returns (and writes) `metrics.json`."""
    out = Path(out)
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    data = out / "data"
    generate("poisson2d", data, n=n, seed=seed, workers=2, progress=progress)
    times["data"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    settings = list(DEFAULT["overrides"]) + [f"data.root={data}", f"out={out / 'run'}", f"train.seed={seed}",
                                             f"train.progress={str(progress).lower()}", f"train.budget={budget}"]
    settings += [f"train.epochs={epochs}"] if epochs is not None else []
    run = train(load_config(DEFAULT["config"], settings + list(overrides or [])))
    times["train"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    model = load_model(out / "run" / "model.safetensors")
    held_out = get_family("poisson2d").sample(seed=seed + 1, index=0)  # no dataset sample has this seed
    unseen = sample_volume(held_out, queries, seed=seed + 2)  # random interior points, FE solution interpolated
    at_queries = model.predict(held_out, unseen.points).point_data["u"]
    at_nodes = model.predict(held_out).point_data["u"]
    truth_q, truth_n = unseen.point_data["u"], held_out.point_data["u"]
    cloud = unseen.with_point_data(u_predicted=at_queries, error=at_queries - truth_q)
    mesh = Geometry(held_out.points, held_out.cells, {**held_out.point_data, "u_predicted": at_nodes,
                                                      "error": at_nodes - truth_n})
    cloud.save(out / "held_out_queries.vtu")
    mesh.save(out / "held_out_mesh.vtu")
    name = model.model_config["name"]
    plot_fields(mesh, ["u", "u_predicted", "error"], out / "held_out.png", shared=("u", "u_predicted"),
                titles=["finite elements", name, f"{name} - finite elements"],
                suptitle="held-out geometry (not in the dataset)")
    times["predict"] = time.perf_counter() - t0

    metrics = {"dataset": {"family": "poisson2d", "samples": n, "root": str(data)},
               "model": {"name": name, "parameters": sum(p.numel() for p in model.parameters())},
               "test": run["test"],
               "held_out": {"query_points": len(unseen.points), "mesh_points": held_out.n_points,
                            "rel_l2_at_queries": _relative_l2(at_queries, truth_q),
                            "max_error_at_queries": float(np.abs(at_queries - truth_q).max()),
                            "rel_l2_at_nodes": _relative_l2(at_nodes, truth_n)},
               "epochs": len(run["history"]), "seconds": times}
    write_json_atomic(out / "metrics.json", metrics)
    print(f"\ntest split ({run['test']['samples']} samples): relative L2 of u = "
          f"{run['test']['fields']['u']['rel_l2']:.4f}")
    print(f"held-out geometry, {len(unseen.points)} unseen query points: relative L2 = "
          f"{metrics['held_out']['rel_l2_at_queries']:.4f}")
    print(f"seconds: data {times['data']:.0f}, training {times['train']:.0f}, prediction {times['predict']:.1f}")
    print(f"wrote {out}/metrics.json, held_out_mesh.vtu, held_out_queries.vtu, held_out.png, run/training.png, "
          f"run/model.safetensors")
    return metrics
