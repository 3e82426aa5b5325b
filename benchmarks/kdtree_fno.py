"""K-D tree FNO against the single grid of the same node count, on uniform and graded meshes (issue: the seed's
central idea, NUNO's claim of 30-60% lower error on non-uniform meshes).

1. Transfer only (no training, a few minutes): the true fields of each test sample go points -> grids ->
   points through the transfers the model builds (`configs/kdfno_<family>.yaml`, tree fitted on the training
   split as training does it) and through its single-grid twin (the same config with `model.n_subdomains=1`:
   the same total grid nodes), relative L2 per field. If the tree does not represent the data better, the
   network cannot either.
2. Training at equal CPU budget (one torch thread, `train.budget`): KD-FNO, its single-grid twin, GINO and the
   best model of `benchmarks/accuracy.py` on each dataset, the cells run by `accuracy.py` (fresh process each,
   resumable, the same JSON).

Datasets: poisson2d, elasticity2d, potential3d and airfoil2d (RANS meshes graded ~4000x from the wall: the
setting NUNO was made for) as built in, and poisson2d / elasticity2d on graded meshes (`grading=10`: fine at
the holes / void, 10x coarser away). Prints JSON; writes `OUT/transfer.json`,
`OUT/kdtree_fno.json` and the table `OUT/kdtree_fno.md`.

    python benchmarks/kdtree_fno.py [--budget 900] [--datasets ...] [--models ...] [--transfer-only]
                                    [--out out/kdtree_fno] [--cells out/accuracy] [--quick]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from accuracy import QUICK, ROOT, SIZES, _save, family_of, make_data  # noqa: E402

DATASETS = ["poisson2d", "poisson2d_graded", "elasticity2d", "elasticity2d_graded", "potential3d", "airfoil2d"]
#: the most accurate geoop model per family in benchmarks/results/accuracy.json
BEST = {"poisson2d": "fno", "elasticity2d": "fno", "potential3d": "transolver", "airfoil2d": "fno"}
MODELS = ["kdfno", "kdfno_one_grid", "gino", "best"]


def _scipy(matrix) -> "object":
    """A torch sparse COO matrix as scipy CSR."""
    import scipy.sparse as sp

    coo = matrix.coalesce()
    (rows, cols), vals = coo.indices().numpy(), coo.values().double().numpy()
    return sp.csr_matrix((vals, (rows, cols)), shape=tuple(coo.shape))


def transfer_errors(root: Path, n_subdomains: int | None = None, max_test: int = 40) -> dict:
    """Round-trip errors (points -> grids -> points, relative L2 on the test split, mean over samples) of the
    true fields through the KD-FNO transfers of the family's config (`n_subdomains` overrides the config's: 1
    gives the single-grid twin), and the grid node count. A field defined on part of the points only (Cp on the
    body) is first extended off it by its nearest defined value, and scored where it is defined."""
    import torch
    from scipy.spatial import cKDTree

    from geoop.data.dataset import SimulationDataset
    from geoop.training import build_operator, load_config

    family = json.loads((root / "manifest.json").read_text())["family"]
    config = load_config(ROOT / "configs" / f"kdfno_{family}.yaml",
                         [f"data.root={root}"] + ([f"model.n_subdomains={n_subdomains}"] if n_subdomains else []))
    train, test = SimulationDataset(root, "train"), SimulationDataset(root, "test")
    torch.manual_seed(0)
    operator = build_operator(train, config.model)
    leaves = operator.model.grids.n_nodes
    slices, start = {}, 0
    for name in test.targets:
        slices[name] = slice(start, start + test.specs[name]["components"])
        start = slices[name].stop
    errors = {n: [] for n in slices}
    for i in range(min(max_test, len(test))):
        data = test[i]
        transfers = operator.prepare(data, test.geometry(i))
        round_trip = _scipy(transfers.to_points) @ _scipy(transfers.to_grid)[:leaves]
        pos, y, mask = data.pos.double().numpy(), data.y.double().numpy(), data.y_mask.numpy()
        for name, s in slices.items():
            values, defined = y[:, s].copy(), mask[:, s].all(1)
            if not defined.all():
                nearest = cKDTree(pos[defined]).query(pos[~defined])[1]
                values[~defined] = values[defined][nearest]
            back = (round_trip @ values)[defined]
            errors[name].append(np.linalg.norm(back - values[defined]) / np.linalg.norm(values[defined]))
    return {"grid_nodes": int(leaves), "leaves": int(operator.model.grids.n_leaves),
            "round_trip": {n: float(np.mean(v)) for n, v in errors.items()}}


def model_name(dataset: str, model: str) -> str:
    return BEST[family_of(dataset)] if model == "best" else model


def table(transfer: dict, cells: dict, datasets: list[str]) -> tuple[str, dict]:
    """Markdown: per dataset, test error of each model and the transfer-only errors; and the KD-FNO vs
    single-grid summary."""
    rows = ["| dataset | model | test rel. L2 (mean over fields) | per field | CPU s | epochs | round trip of the "
            "true fields (transfer only) | grid nodes |", "|---|---|---|---|---|---|---|---|"]
    summary = {}
    for d in datasets:
        for m in MODELS:
            name = model_name(d, m)
            cell = cells.get(f"{d}/{name}")
            t = transfer.get(d, {}).get({"kdfno": "kdfno", "kdfno_one_grid": "one_grid"}.get(m, ""), {})
            tr = ", ".join(f"{f} {e:.4f}" for f, e in t.get("round_trip", {}).items())
            if cell is None or "failed" in cell:
                status = "failed" if cell else "not run"
                rows.append(f"| {d} | {name} | {status} | | | | {tr} | {t.get('grid_nodes', '')} |")
                continue
            fields = ", ".join(f"{f} {v['rel_l2']:.4f}" for f, v in cell["test"].items())
            rows.append(f"| {d} | {name} | {cell['test_rel_l2_mean']:.4f} | {fields} | {cell['cpu_seconds']:.0f} | "
                        f"{cell['epochs']} | {tr} | {t.get('grid_nodes', '')} |")
        kd, one = cells.get(f"{d}/kdfno"), cells.get(f"{d}/kdfno_one_grid")
        if kd and one and "failed" not in kd and "failed" not in one:
            summary[d] = {"kdfno": kd["test_rel_l2_mean"], "one_grid": one["test_rel_l2_mean"],
                          "reduction": 1 - kd["test_rel_l2_mean"] / one["test_rel_l2_mean"]}
    return "\n".join(rows) + "\n", summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/kdtree_fno")
    ap.add_argument("--budget", type=float, default=900.0, help="CPU-seconds of training per cell")
    ap.add_argument("--datasets", nargs="+", default=DATASETS, choices=DATASETS)
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--cells", default=None, metavar="DIR",
                    help="accuracy.py's output folder to train the cells in (default OUT/cells); pointing it at "
                         "that benchmark's folder shares its data and the cells both need")
    ap.add_argument("--transfer-only", action="store_true", help="only the round-trip study (no training)")
    ap.add_argument("--max-test", type=int, default=40, help="test samples in the round-trip study")
    ap.add_argument("--quick", action="store_true", help="tiny datasets and budget: a smoke test")
    args = ap.parse_args()
    out = Path(args.out) / ("quick" if args.quick else "")
    cells_out = Path(args.cells or Path(args.out) / "cells")  # accuracy.py's --out (it adds quick/ itself)
    cells_dir = cells_out / ("quick" if args.quick else "")
    data = cells_dir / "data"
    sizes = QUICK if args.quick else SIZES
    out.mkdir(parents=True, exist_ok=True)
    transfer_path = out / "transfer.json"
    transfer = json.loads(transfer_path.read_text()) if transfer_path.is_file() else {}
    for d in args.datasets:
        make_data(d, data / d, sizes[d])
        if d not in transfer:
            transfer[d] = {"kdfno": transfer_errors(data / d, max_test=args.max_test),
                           "one_grid": transfer_errors(data / d, 1, max_test=args.max_test)}
            _save(transfer_path, transfer)
            print(f"{d}: transfer {json.dumps(transfer[d])}", file=sys.stderr)
    if not args.transfer_only:
        models = sorted({model_name(d, m) for d in args.datasets for m in args.models})
        command = [sys.executable, str(Path(__file__).parent / "accuracy.py"), "--out", str(cells_out),
                   "--budget", str(args.budget), "--jobs", str(args.jobs),
                   "--datasets", *args.datasets, "--models", *models] + (["--quick"] if args.quick else [])
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    results = cells_dir / "results.json"
    cells = json.loads(results.read_text())["cells"] if results.is_file() else {}
    markdown, summary = table(transfer, cells, args.datasets)
    (out / "kdtree_fno.md").write_text(markdown)
    report = {"budget_cpu_s": args.budget, "transfer": transfer, "kdfno_vs_one_grid": summary}
    _save(out / "kdtree_fno.json", report)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
