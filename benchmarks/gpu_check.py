"""The GPU check: geoop's device paths against CPU references, and its speed and memory on the device, in one run
that fits a short lease (under 8 minutes on an H100). Prints one JSON and writes it to `--out`.

1. Correctness: radius and kNN search by the cell list on the device against the CPU KD-tree (the same int64
   pairs; the full run's radius graph has more than 2^24 pairs); every registered model's forward and backward on
   a mixed batch against the same model on the CPU in float32 (TF32 off; per-model tolerances below), and finite
   under bf16 autocast; `FieldOperator.predict` on the device against the CPU; a 2-process NCCL training run when
   the device has two GPUs.
2. Speed and memory, side by side in this process: a training step (forward, backward, AdamW; median of
   `--steps` after warm-up, CUDA events on a GPU) and its peak memory for GINO at 100k points with a 32^3 and a
   64^3 latent grid, the FNO of the best 2D and 3D configs, Transolver at 100k and 1M points, KD-FNO, and
   neuraloperator's GINO on GINO's input (when installed); prediction throughput of a 3D GINO at 10M queries in
   one `predict` call; one epoch of `configs/transolver_potential3d.yaml` (when the data extra is installed).

    python benchmarks/gpu_check.py --device cuda [--out benchmarks/results/gpu_h100.json]
    python benchmarks/gpu_check.py --device cpu --quick      # the dry run of the test suite: tiny sizes

Float64 references are not possible for every model (the sparse transfers compute in float32 by design), so the
reference is the CPU in float32; the tolerance is on max |device - cpu| / max |cpu| per output and gradient.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from geoop.graph.neighbors import knn_search, radius_search  # noqa: E402
from geoop.models.base import Operator, SampleInputs  # noqa: E402
from geoop.models.registry import MODELS, TINY, DataFacts, build_model  # noqa: E402

#: relative tolerance of each model's device output and gradients against the CPU (default: DEFAULT_TOLERANCE)
TOLERANCES = {"transolver": 1e-3, "mino": 1e-3, "gnot": 1e-3, "neuralop_gino": 1e-3}
DEFAULT_TOLERANCE = 2e-4
#: problem sizes of the full run and of the dry run
SIZES = {
    "full": {"search_points": 1_000_000, "search_radius": 0.0172, "k": 16, "knn_points": 100_000,
             "knn_queries": 10_000, "gino_points": 100_000, "transolver_points": (100_000, 1_000_000),
             "fno_points": (1_300, 3_000), "predict_queries": 10_000_000,
             "epoch_samples": 24, "steps": 20, "warmup": 3, "gino_width": 64},
    "quick": {"search_points": 4_000, "search_radius": 0.08, "k": 8, "knn_points": 4_000, "knn_queries": 1_000,
              "gino_points": 3_000, "transolver_points": (2_000,), "fno_points": (400, 600), "predict_queries": 20_000,
              "epoch_samples": 0, "steps": 2, "warmup": 1, "gino_width": 8},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mb(device: torch.device) -> float:
    """Peak memory since the last reset: the device allocator's on a GPU, the process's RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_search(device: torch.device, size: dict) -> dict:
    """Radius search by the cell list on the device against the CPU KD-tree: identical int64 pair lists, on
    `search_points` points. kNN has no cell-list backend (on CUDA, `auto` searches on the CPU and moves the result):
    its brute-force search on the device is checked on `knn_points` points and `knn_queries` of them as queries."""
    g = torch.Generator().manual_seed(0)
    points = torch.rand(size["search_points"], 3, generator=g)
    few = points[:size["knn_points"]]
    out = {"points": len(points), "knn_points": len(few), "knn_queries": size["knn_queries"]}
    cases = (("radius", radius_search, points, size["search_radius"], None, "cell_list"),
             ("knn", knn_search, few, size["k"], few[:size["knn_queries"]], "brute"))
    for kind, search, points, arg, q, backend in cases:
        t0 = time.perf_counter()
        reference = search(points, arg, q, backend="kdtree")
        cpu_seconds = time.perf_counter() - t0
        on_device, q_device = points.to(device), None if q is None else q.to(device)
        search(on_device[:1000], arg, None if q is None else q_device[:100], backend=backend)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        got = search(on_device, arg, q_device, backend=backend)
        _sync(device)
        seconds = time.perf_counter() - t0
        pairs = got.edge_index.cpu()
        out[kind] = {"backend": backend, "pairs": int(pairs.shape[1]), "dtype": str(got.edge_index.dtype),
                     "equal": bool(torch.equal(pairs, reference.edge_index)), "device_seconds": seconds,
                     "cpu_kdtree_seconds": cpu_seconds, "above_2^24_pairs": pairs.shape[1] > 2**24}
    return out


def _geometries(dim: int = 2, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, SampleInputs]]:
    """Three clouds of other sizes in [-0.95, 0.95]^d with queries and every sample input a model may read."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in ((300, 80), (180, 50), (120, 60)):
        pos = torch.tensor(rng.uniform(-0.95, 0.95, (n, dim)), dtype=torch.float32)
        pos[:16, 0] = torch.linspace(-0.95, 0.95, 16)
        pos[:16, 1] = torch.tensor([0.95, -0.95] * 8)
        boundary = pos.abs().max(1).values > 0.94
        normals = torch.where(boundary[:, None], torch.sign(pos), torch.zeros_like(pos))
        inputs = SampleInputs(weights=torch.full((n,), 1.0 / n), boundary=boundary, normals=normals,
                              boundary_weights=boundary.float() / max(int(boundary.sum()), 1),
                              sdf_fn=lambda p: 0.95 - np.abs(p).max(axis=1))
        out.append((pos, torch.tensor(rng.uniform(-0.9, 0.9, (m, dim)), dtype=torch.float32), inputs))
    return out


def _neuralop_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("neuralop") is not None
    except ImportError:
        return False


def _registered() -> dict[str, dict]:
    """Every registered model with its tiny options, neuraloperator's baselines too when installed."""
    if _neuralop_installed():
        import neuralop_baselines  # noqa: F401  (registers neuralop_fno and neuralop_gino)
    small = {"neuralop_fno": {"resolution": 16, "hidden": 8, "modes": 4, "n_layers": 1},
             "neuralop_gino": {"resolution": 8, "hidden": 8, "modes": 3, "n_layers": 1}}
    return {name: {**small.get(name, {}), **TINY.get(name, {})} for name in sorted(MODELS)}


def _step(model: Operator, f: torch.Tensor, batch, device: torch.device, bf16: bool = False
          ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Output and parameter gradients of `sum(out^2)` on `device`."""
    model.zero_grad()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
        out = model(f.to(device), batch.to(device))
    out.float().square().sum().backward()
    grads = {n: p.grad.detach() for n, p in model.named_parameters() if p.grad is not None}
    return out.detach().float().cpu(), {n: (torch.view_as_real(v) if v.is_complex() else v).float().cpu()
                                        for n, v in grads.items()}


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) if b.numel() else 0.0


def check_models(device: torch.device) -> dict:
    """Each registered model's forward and backward on a mixed batch, on the device against the CPU."""
    geometries = _geometries()
    g = torch.Generator().manual_seed(1)
    f = torch.cat([torch.rand(len(pos), 3, generator=g) for pos, _, _ in geometries])
    facts = DataFacts([pos.double().numpy() for pos, _, _ in geometries], boundary_channels=[1], type_channels=[2])
    out = {}
    for name, options in _registered().items():
        try:
            out[name] = _check_model(name, options, facts, geometries, f, device)
        except Exception as e:  # recorded per model, so that one failure does not hide the others
            out[name] = {"error": f"{type(e).__name__}: {e}", "within": False}
    return out


def _check_model(name: str, options: dict, facts: DataFacts, geometries: list, f: torch.Tensor,
                 device: torch.device) -> dict:
    torch.manual_seed(0)
    model, _ = build_model(name, 2, 3, 2, facts, **options)
    model.train()
    parts = [model.prepare(pos, q, inputs.only(model.takes)) for pos, q, inputs in geometries]
    batch = type(parts[0]).collate(parts)
    torch.manual_seed(0)
    reference, reference_grads = _step(model, f, batch, torch.device("cpu"))
    model.to(device)
    torch.manual_seed(0)
    got, grads = _step(model, f, batch, device)
    error = max([_relative(got, reference)] + [_relative(grads[n], reference_grads[n]) for n in reference_grads])
    tolerance = TOLERANCES.get(name, DEFAULT_TOLERANCE)
    record = {"max_relative_error": error, "tolerance": tolerance, "within": error <= tolerance}
    try:
        low, low_grads = _step(model, f, batch, device, bf16=True)
        record["bf16_finite"] = bool(torch.isfinite(low).all() and all(torch.isfinite(v).all()
                                                                      for v in low_grads.values()))
    except RuntimeError as e:
        record.update(bf16_finite=False, bf16_error=str(e).splitlines()[0])
    return record


def synthetic_dataset(folder: Path, n: int = 8, points: int = 2000) -> Path:
    """A dataset of `n` 3D clouds tetrahedralised (scipy's Delaunay), input `k` and target `u = k sin(2x) cos(y)
    + z`, written as VTU and brought in with `geoop data import` (no solver needed)."""
    from scipy.spatial import Delaunay

    from geoop import Geometry
    from geoop.data.importer import import_folder

    rng = np.random.default_rng(0)
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        p = rng.uniform(0, 1, (points, 3)) * rng.uniform(0.7, 1.3, 3)
        k = 1 + 0.5 * np.sin(3 * p[:, 0] + i)
        u = k * np.sin(2 * p[:, 0]) * np.cos(p[:, 1]) + p[:, 2]
        Geometry(p, {"tetra": Delaunay(p).simplices}, point_data={"k": k, "u": u}).save(files / f"case_{i:03d}.vtu")
    import_folder(files, folder / "data", inputs=["k"], targets=["u"], progress=False, fractions=(0.75, 0.25, 0.0))
    return folder / "data"


def _operator(data: Path, name: str, options: dict) -> object:
    from geoop.data.dataset import SimulationDataset
    from geoop.training import ModelConfig, build_operator

    torch.manual_seed(0)
    return build_operator(SimulationDataset(data, "train"), ModelConfig(name, options)).eval()


def check_predict(device: torch.device, data: Path) -> dict:
    """`FieldOperator.predict` of a 3D GINO on the device against the CPU, at points that are not nodes."""
    import geoop
    from geoop.data.dataset import SimulationDataset

    operator = _operator(data, "gino", TINY["gino"])
    geometry = SimulationDataset(data, "val").geometry(0)
    queries = np.random.default_rng(2).uniform(geometry.points.min(0), geometry.points.max(0), (5000, 3))
    reference = operator.predict(geometry, queries).point_data["u"]
    got = operator.to(device).predict(geometry, queries).point_data["u"]
    error = float(np.abs(got - reference).max() / max(np.abs(reference).max(), 1e-30))
    return {"queries": len(queries), "max_relative_error": error, "within": error <= DEFAULT_TOLERANCE,
            "geoop": geoop.__version__}


def check_distributed(device: torch.device, data: Path) -> dict:
    """Two processes over NCCL, one GPU each (a short GINO run through `geoop train --nproc 2`)."""
    if device.type != "cuda" or torch.cuda.device_count() < 2:
        count = torch.cuda.device_count() if device.type == "cuda" else 0
        return {"skipped": f"needs two GPUs; this {device.type} run has {count}"}
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, "-m", "geoop", "train", "--nproc", "2", "--set", "model.name=gino",
                               *[f"--set=model.{k}={json.dumps(v)}" for k, v in TINY["gino"].items()],
                               "--set", f"data.root={data}", "--set", "train.epochs=2", "--set", "train.device=cuda",
                               "--set", "train.progress=false", "--out", out], capture_output=True, text=True)
        return {"returncode": done.returncode, "ok": done.returncode == 0, "tail": done.stderr[-1500:]}


def _timed_steps(model: torch.nn.Module, f: torch.Tensor, batch, target: torch.Tensor, device: torch.device,
                 steps: int, warmup: int) -> dict:
    """Median seconds of a training step (forward, backward, AdamW) after `warmup` steps, and peak memory."""
    model.to(device).train()
    f, batch, target = f.to(device), batch.to(device), target.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step() -> None:
        loss = (model(f, batch) - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    _sync(device)
    _peak_reset(device)
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000)
        else:
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
    return {"step_seconds": statistics.median(times), "peak_mb": _peak_mb(device),
            "parameters": sum(p.numel() for p in model.parameters())}


def _config_model(name: str) -> dict:
    """The `model` section of a shipped config, less its name."""
    import yaml

    section = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())["model"]
    return {k: v for k, v in section.items() if k != "name"}


def speed(device: torch.device, size: dict) -> dict:
    """Training-step time and peak memory of each case, one after another in this process."""
    from geoop.models import GINO

    g = torch.Generator().manual_seed(0)
    cases: dict[str, Callable[[], tuple]] = {}

    def gino(resolution: int) -> Callable[[], tuple]:
        def make():
            pos = torch.rand(size["gino_points"], 3, generator=g) * 2 - 1
            radius = 0.066 if resolution >= 32 else 3.0 / (resolution - 1)  # the anchor's, in [-1, 1] coordinates
            width = size["gino_width"]
            model = GINO(3, 1, 1, resolution=resolution, hidden=width, modes=16 if resolution >= 32 else 4,
                         n_layers=4, in_radius=radius, out_radius=radius, use_sdf=False,
                         **({} if width >= 64 else {"in_gno_hidden": [width], "out_gno_hidden": [width],
                                                   "projection_hidden": width}))
            return model, pos, model.prepare(pos)
        return make

    def registered(name: str, config: str, points: int, dim: int, batch: int = 1) -> Callable[[], tuple]:
        def make():
            clouds = [torch.rand(points, dim, generator=g) * 2 - 1 for _ in range(batch)]
            sdf = (lambda p: 1.0 - np.abs(p).max(axis=1))
            model, _ = build_model(name, dim, 1, 1, DataFacts([c.double().numpy() for c in clouds]),
                                   **_config_model(config))
            inputs = SampleInputs(weights=torch.full((points,), 1.0 / points), sdf_fn=sdf,
                                  boundary=torch.zeros(points, dtype=torch.bool), normals=torch.zeros(points, dim))
            parts = [model.prepare(c, None, inputs.only(model.takes)) for c in clouds]
            return model, torch.cat(clouds), type(parts[0]).collate(parts)
        return make

    cases["gino_32^3"] = gino(32 if size["gino_points"] >= 50_000 else 8)
    cases["gino_64^3"] = gino(64 if size["gino_points"] >= 50_000 else 12)
    cases["fno_2d (fno_poisson2d)"] = registered("fno", "fno_poisson2d", size["fno_points"][0], 2, batch=4)
    cases["fno_3d (fno_potential3d)"] = registered("fno", "fno_potential3d", size["fno_points"][1], 3, batch=4)
    cases["kdfno_3d (kdfno_potential3d)"] = registered("kdfno", "kdfno_potential3d", size["fno_points"][1], 3, batch=4)
    for n in size["transolver_points"]:
        cases[f"transolver_{n}"] = registered("transolver", "transolver_potential3d", n, 3)
    if _neuralop_installed():
        import neuralop_baselines  # noqa: F401
        cases["neuralop_gino_32^3 (on gino_32^3's input)"] = _neuralop_gino(size, g)
    else:
        cases["neuralop_gino_32^3 (on gino_32^3's input)"] = ImportError("pip install neuraloperator==2.0.0")
    out = {}
    for name, make in cases.items():
        if isinstance(make, Exception):
            out[name] = {"skipped": f"neuraloperator is not installed ({make})"}
            continue
        try:
            model, pos, batch = make()
            f = torch.sin(3 * pos[:, :1])
            target = torch.cos(2 * pos.sum(1, keepdim=True))
            out[name] = {"points": len(pos), **_timed_steps(model, f, batch, target, device, size["steps"],
                                                            size["warmup"])}
        except torch.cuda.OutOfMemoryError as e:  # a figure too: this size does not fit this device
            out[name] = {"out_of_memory": str(e).splitlines()[0]}
        finally:
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return out


def _neuralop_gino(size: dict, g: torch.Generator) -> Callable[[], tuple]:
    def make():
        pos = torch.rand(size["gino_points"], 3, generator=g) * 2 - 1
        full = size["gino_points"] >= 50_000
        model, _ = build_model("neuralop_gino", 3, 1, 1, DataFacts([pos.double().numpy()]),
                               resolution=32 if full else 8, hidden=size["gino_width"], modes=16 if full else 4,
                               n_layers=4, **({} if full else {"in_gno_hidden": [8], "out_gno_hidden": [8]}))
        inputs = SampleInputs(sdf_fn=lambda p: 1.0 - np.abs(p).max(axis=1))
        return model, pos, model.prepare(pos, None, inputs)
    return make


def prediction_throughput(device: torch.device, data: Path, queries: int) -> dict:
    """One `predict` call of a 3D GINO (32^3 latent grid, the default kernel widths; the tiny one in the dry run)
    at `queries` random points."""
    from geoop.data.dataset import SimulationDataset

    options = {"resolution": 32, "hidden": 32, "modes": 8} if queries >= 1_000_000 else TINY["gino"]
    resolution = options["resolution"]
    operator = _operator(data, "gino", options).to(device)
    geometry = SimulationDataset(data, "val").geometry(0)
    points = np.random.default_rng(3).uniform(geometry.points.min(0), geometry.points.max(0), (queries, 3))
    _peak_reset(device)
    t0 = time.perf_counter()
    result = operator.predict(geometry, points, chunk=min(queries, 2_000_000))
    _sync(device)
    seconds = time.perf_counter() - t0
    return {"queries": queries, "resolution": resolution, "seconds": seconds, "queries_per_second": queries / seconds,
            "peak_mb": _peak_mb(device), "finite": bool(np.isfinite(result.point_data["u"]).all())}


def potential3d_epoch(device: torch.device, samples: int, folder: Path) -> dict:
    """Seconds of one epoch of configs/transolver_potential3d.yaml on `samples` potential3d samples."""
    if not samples:
        return {"skipped": "not in the dry run"}
    try:
        from geoop.data import generate

        generate("potential3d", folder / "potential3d", n=samples, seed=0, workers=2, progress=False)
    except Exception as e:  # the data extra (gmsh, scikit-fem) missing on this machine
        return {"skipped": f"could not make potential3d data: {e}"}
    from geoop.training import load_config, train

    t0 = time.perf_counter()
    run = train(load_config(ROOT / "configs" / "transolver_potential3d.yaml",
                            [f"data.root={folder / 'potential3d'}", f"out={folder / 'run'}", "train.epochs=1",
                             "train.budget=null", f"train.device={device.type}", "train.progress=false"]))
    return {"samples": samples, "seconds": time.perf_counter() - t0, "epoch": run["history"][0]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--quick", action="store_true", help="tiny sizes: the dry run of the test suite")
    ap.add_argument("--out", default=None, help="JSON file (default: benchmarks/results/gpu_<device name>.json, "
                                                "or out/gpu_check_quick.json with --quick)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run with --device cpu --quick for the dry run")
    device = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    size = SIZES["quick" if args.quick else "full"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    result = {"device": name, "torch": torch.__version__, "quick": args.quick, "date": time.strftime("%Y-%m-%d")}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = synthetic_dataset(folder / "synthetic", points=2000 if not args.quick else 400)
        sections = [("search", lambda: check_search(device, size)), ("models", lambda: check_models(device)),
                    ("predict", lambda: check_predict(device, data)),
                    ("distributed", lambda: check_distributed(device, data)), ("speed", lambda: speed(device, size)),
                    ("predict_throughput", lambda: prediction_throughput(device, data, size["predict_queries"])),
                    ("potential3d_epoch", lambda: potential3d_epoch(device, size["epoch_samples"], folder))]
        for key, run in sections:
            t0 = time.perf_counter()
            try:
                result[key] = run()
            except Exception as e:  # one broken section must not lose the others' figures in a short lease
                result[key] = {"error": f"{type(e).__name__}: {e}"}
            result[key + "_seconds"] = time.perf_counter() - t0
            print(f"{key}: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    result["seconds"] = time.perf_counter() - t_all
    result["correct"] = all([result["search"].get("radius", {}).get("equal", False),
                             result["search"].get("knn", {}).get("equal", False),
                             all(m.get("within") and m.get("bf16_finite") for m in result["models"].values())
                             if "error" not in result["models"] else False,
                             result["predict"].get("within", False)])
    slug = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    out = Path(args.out or (ROOT / "out" / "gpu_check_quick.json" if args.quick else
                            ROOT / "benchmarks" / "results" / f"gpu_{slug}.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(result, indent=1))
    tmp_out.replace(out)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
