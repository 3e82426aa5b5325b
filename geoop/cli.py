"""The `geoop` command: `info`, `convert`, `demo`."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import geoop
from geoop.errors import GeoopError


def _info(args: argparse.Namespace) -> None:
    g = geoop.load(args.file)
    info = g.summary()
    if args.json:
        print(json.dumps(info, indent=1))
        return
    lo, hi = g.bounds
    rows = [("file", args.file), ("kind", f"{g.kind} ({g.dim}D)"), ("points", g.n_points),
            ("cells", ", ".join(f"{t}: {len(c)}" for t, c in g.cells.items()) or "none"),
            ("bounding box", f"{lo.round(6).tolist()} .. {hi.round(6).tolist()}"),
            ("boundary points", int(g.boundary_mask.sum()))]
    if "measure" in info:
        rows += [({3: "volume", 2: "area", 1: "length"}[g.cell_dim], f"{info['measure']:.6g}"),
                 ("watertight", "yes" if info["watertight"] else "no")]
    for name, v in g.point_data.items():
        rows.append((f"point field {name}", f"{v.dtype} {list(v.shape)}"))
    for name, per_type in g.cell_data.items():
        rows.append((f"cell field {name}", ", ".join(f"{t}: {a.dtype} {list(a.shape)}" for t, a in per_type.items())))
    if g.normals is not None:
        rows.append(("normals", "given" if g._normals is not None else "derived"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def _convert(args: argparse.Namespace) -> None:
    g = geoop.load(args.input, sort=False)
    print(f"wrote {g.save(args.output)}  ({g})")


def _demo(args: argparse.Namespace) -> None:
    from geoop.workflow.demo import run_demo

    run_demo(Path(args.out), Path(args.meshes) if args.meshes else None)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="geoop", description="Geometric neural operators on arbitrary geometry.")
    ap.add_argument("--version", action="version", version=f"geoop {geoop.__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log what geoop chooses (backends, sizes)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="summarise a geometry file")
    p.add_argument("file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=_info)
    p = sub.add_parser("convert", help="convert between formats (e.g. MSH -> VTU, STL -> PLY)")
    p.add_argument("input")
    p.add_argument("output", help="target file; its extension picks the format (.vtu .vtk .ply .npz ...)")
    p.set_defaults(run=_convert)
    p = sub.add_parser("demo", help="the main job on the embedded example geometries")
    p.add_argument("--out", default="out/demo", help="output folder (PNG, VTU, summary.json)")
    p.add_argument("--meshes", default=None, help="folder of geometries (default: the repository's meshes/)")
    p.set_defaults(run=_demo)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.run(args)
    except GeoopError as e:
        print(f"geoop: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
