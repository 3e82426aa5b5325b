"""The gallery (`geoop gallery`): load every geometry in `meshes/`, derive what geoop derives
(boundaries, normals, quadrature weights, signed distance, a radius graph), print a table, and write one PNG
and one VTU per geometry plus `summary.json`."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from tqdm import tqdm

import geoop
from geoop.geometry import quadrature_weights
from geoop.graph import radius_graph
from geoop.io import FORMATS
from geoop.viz import plot_geometry


def default_meshes() -> Path:
    """The repository's `meshes/` folder (next to the package), else `./meshes`."""
    here = Path(__file__).resolve().parents[2] / "meshes"
    return here if here.is_dir() else Path("meshes")


def _describe(path: Path, out: Path) -> dict:
    t0 = time.perf_counter()
    g = geoop.load(path)
    info = g.summary()
    info["quadrature_sum"] = float(quadrature_weights(g).sum())
    spacing = float(np.median(cKDTree(g.points).query(g.points, k=2)[0][:, 1]))
    graph = radius_graph(g.points, 2.5 * spacing)
    info["radius_graph"] = {"radius": 2.5 * spacing, "edges": len(graph),
                            "mean_degree": len(graph) / g.n_points}
    field = next(iter(g.point_data), None)
    if g.is_watertight:
        sdf = geoop.signed_distance(g, g.points + 0.05 * (g.bounds[1] - g.bounds[0]).max())
        info["sdf_range_at_shifted_points"] = [float(sdf.min()), float(sdf.max())]
        if field is None and g.kind == "volume":
            g = g.with_point_data(boundary=g.boundary_mask.astype(np.float64))
            field = "boundary"
    info["png"] = str(plot_geometry(g, out / f"{path.stem}.png", field=field, title=path.name))
    info["vtu"] = str(g.save(out / f"{path.stem}.vtu"))
    info["seconds"] = time.perf_counter() - t0
    return info


def run_gallery(out: Path, meshes: Path | None = None) -> list[dict]:
    """Describe every readable file in `meshes` into `out`; returns the rows of `summary.json`."""
    meshes = meshes or default_meshes()
    out.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in meshes.iterdir() if p.suffix.lower() in FORMATS)
    rows = [_describe(p, out) for p in tqdm(files, desc="geometries", unit="file")]
    header = f"{'file':22s} {'kind':8s} {'dim':>3s} {'points':>7s} {'cells':>22s} {'boundary':>8s} " \
             f"{'measure':>10s} {'closed':>6s} {'edges':>8s}"
    print(header)
    print("-" * len(header))
    for r in rows:
        cells = ", ".join(f"{k}={v}" for k, v in r["cells"].items()) or "-"
        measure = f"{r['measure']:.4g}" if "measure" in r else "-"
        closed = str(r.get("watertight", "-"))
        print(f"{Path(r['source']).name:22s} {r['kind']:8s} {r['dim']:3d} {r['points']:7d} {cells:>22s} "
              f"{r['boundary_points']:8d} {measure:>10s} {closed:>6s} {r['radius_graph']['edges']:8d}")
    summary = out / "summary.json"
    tmp = summary.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(summary)
    print(f"\nwrote {len(rows)} PNG + VTU files and {summary}")
    return rows
