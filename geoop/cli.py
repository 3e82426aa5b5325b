"""The `geoop` command: `info`, `convert`, `demo`, `gallery`, `data`, `train`, `evaluate`, `predict`."""
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
        rows.append(("normals", "given" if g.given_normals is not None else "derived"))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")


def _convert(args: argparse.Namespace) -> None:
    g = geoop.load(args.input, sort=False)
    print(f"wrote {g.save(args.output)}  ({g})")


def _demo(args: argparse.Namespace) -> None:
    from geoop.workflow.main_job import run_main_job

    run_main_job(args.out, n=args.n, epochs=args.epochs, overrides=args.set, budget=args.budget)


def _gallery(args: argparse.Namespace) -> None:
    from geoop.workflow.gallery import run_gallery

    run_gallery(Path(args.out), Path(args.meshes) if args.meshes else None)


def _train(args: argparse.Namespace) -> None:
    from geoop.training.distributed import launched_by_torchrun
    from geoop.training.run import load_config, train

    overrides = list(args.set or []) + ([f"out={args.out}"] if args.out else [])
    config = load_config(args.config, overrides)  # a bad config fails here, before any process is started
    if args.nproc > 1 and not launched_by_torchrun():
        _launch(args.nproc, args.argv)
        return
    result = train(config)
    if result["rank"] != 0:
        return
    _print_metrics(result["test"], f"test split of {result['out']}")
    print(f"model: {result['out']}/model.safetensors (+ .json), curve data: {result['out']}/metrics.jsonl")


def _launch(nproc: int, argv: list[str]) -> None:
    """Run `geoop train` again under torchrun with `nproc` processes on this machine (loopback rendezvous)."""
    import subprocess

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "geoop", *argv]
    code = subprocess.call(cmd)
    if code != 0:
        raise GeoopError(f"distributed training failed (exit code {code}); the failing rank's error is above",
                         fix="fix that error and rerun the same command: the run resumes from its last epoch")


def _evaluate(args: argparse.Namespace) -> None:
    from geoop.data.manifest import write_json_atomic
    from geoop.training.run import evaluate_checkpoint

    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split)
    _print_metrics(metrics, f"{args.split} split of {args.data}")
    out = Path(args.json) if args.json else Path(args.checkpoint).parent / f"evaluate_{args.split}.json"
    write_json_atomic(out, metrics)
    print(f"wrote {out}")


def _print_metrics(metrics: dict, what: str) -> None:
    print(f"{what}: {metrics['samples']} samples")
    print(f"{'field':16s} {'rel L2 (mean)':>14s} {'rel L2 (median)':>16s} {'max error':>12s}")
    for name, m in metrics["fields"].items():
        print(f"{name:16s} {m['rel_l2']:14.4f} {m['rel_l2_median']:16.4f} {m['max_error']:12.4g}")


def _predict(args: argparse.Namespace) -> None:
    from geoop.training.run import parse_value
    from geoop.workflow.predict import predict_file

    constants = {}
    for item in args.constant or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise GeoopError(f"--constant {item!r} is not NAME=VALUE", fix="e.g. --constant freestream=[1,0,0]")
        constants[key.strip()] = parse_value(value)
    result, written, picture = predict_file(args.checkpoint, args.geometry, args.out, args.query, constants,
                                            args.chunk)
    print(f"predicted {', '.join(n for n in result.point_data)} at {result.n_points} points")
    print(f"wrote {written} and {picture}")


def _data_make(args: argparse.Namespace) -> None:
    from geoop.data import generate
    from geoop.training.run import parse_value

    options = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        options[key.strip()] = parse_value(value)
    if args.shapes:
        from geoop.data.families.potential3d import SHAPES
        from geoop.io import FORMATS

        names = [s for s in args.shapes if s in SHAPES]
        files: list[str] = []
        for s in args.shapes:
            if s in SHAPES:
                continue
            p = Path(s)
            if p.is_dir():
                files += [str(f) for f in sorted(p.iterdir()) if f.suffix.lower() in FORMATS]
            elif p.is_file():
                files.append(str(p))
            else:
                raise GeoopError(f"{s!r} is neither a shape name ({', '.join(SHAPES)}) nor a file or folder")
        options["shapes"] = tuple(names)
        options["surface_files"] = tuple(files)
    m = generate(args.name, args.out, n=args.n, seed=args.seed, workers=args.workers, timeout=args.timeout,
                 **options)
    _print_dataset(m, args.out)


def _data_import(args: argparse.Namespace) -> None:
    from geoop.data.importer import import_folder

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else []  # noqa: E731
    m = import_folder(args.source, args.out, split(args.inputs), split(args.targets),
                      cell_to_points=args.cell_to_point, seed=args.seed)
    _print_dataset(m, args.out)


def _data_info(args: argparse.Namespace) -> None:
    from geoop.data import read_manifest

    _print_dataset(read_manifest(args.dir), args.dir)


def _print_dataset(m: dict, root) -> None:
    print(f"dataset {root}: {m['family']} ({m['dim']}D), {len(m['samples'])} samples, status {m.get('status')}")
    print("  splits: " + ", ".join(f"{k} {len(v)}" for k, v in m["splits"].items()))
    if "points_per_sample" in m:
        pps, sps = m["points_per_sample"], m["seconds_per_sample"]
        print(f"  points per sample {pps['min']}..{pps['max']}, seconds per sample {sps['mean']:.2f} "
              f"(max {sps['max']:.2f})")
    for role in ("inputs", "targets"):
        for name, spec in m["fields"][role].items():
            st = m.get("statistics", {}).get(name)
            rng = f" range [{min(st['min']):.3g}, {max(st['max']):.3g}]" if st else ""
            mask = f" on {spec['mask']}" if spec.get("mask") else ""
            print(f"  {role[:-1]:6s} {name:12s} x{spec['components']} [{spec['units']}]{mask}{rng}")
    if m.get("failures"):
        print(f"  {len(m['failures'])} failed samples (skipped): " +
              "; ".join(f"{f['index']}: {f['reason']}" for f in m["failures"][:5]))


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
    p = sub.add_parser("demo", help="the main job: make data, train, evaluate, predict at unseen points")
    p.add_argument("--out", default="out/demo", help="output folder (data, run, metrics.json, VTU, PNG)")
    p.add_argument("--n", type=int, default=400, help="samples to generate")
    p.add_argument("--budget", type=float, default=240.0, help="training CPU-seconds (the stopping rule)")
    p.add_argument("--epochs", type=int, default=None, help="stop after this many epochs if the budget lasts longer")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. model.hidden=64")
    p.set_defaults(run=_demo)
    p = sub.add_parser("gallery", help="load every example geometry, derive boundaries/SDF/graphs, draw them")
    p.add_argument("--out", default="out/gallery", help="output folder (PNG, VTU, summary.json)")
    p.add_argument("--meshes", default=None, help="folder of geometries (default: the repository's meshes/)")
    p.set_defaults(run=_gallery)
    p = sub.add_parser("train", help="train a model from a YAML config (resumes an interrupted run)")
    p.add_argument("--config", default=None, help="YAML file (see configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.epochs=20")
    p.add_argument("--out", default=None, help="run folder (overrides the config's `out`)")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on GPUs)")
    p.set_defaults(run=_train)
    p = sub.add_parser("evaluate", help="per-field errors of a trained model on a dataset split")
    p.add_argument("--checkpoint", required=True, help="model.safetensors of a run")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="train, val, test or all")
    p.add_argument("--json", default=None, help="where to write the metrics (default: beside the checkpoint)")
    p.set_defaults(run=_evaluate)
    p = sub.add_parser("predict", help="predict fields on a geometry file; writes VTU (or any format) + PNG")
    p.add_argument("--checkpoint", required=True, help="model.safetensors of a run")
    p.add_argument("--geometry", required=True, help="geometry file carrying the model's input fields")
    p.add_argument("--query", default=None, help="file whose points to predict at (default: the geometry's)")
    p.add_argument("--out", required=True, help="output file, e.g. prediction.vtu")
    p.add_argument("--constant", action="append", metavar="NAME=VALUE",
                   help="an input field that is the same everywhere, e.g. freestream=[1,0,0]")
    p.add_argument("--chunk", type=int, default=200_000, help="query points per pass (bounds memory)")
    p.set_defaults(run=_predict)

    data = sub.add_parser("data", help="make, import and inspect datasets").add_subparsers(dest="data_command",
                                                                                           required=True)
    p = data.add_parser("make", help="generate a dataset with a reference solver (needs geoop[data])")
    p.add_argument("name", help="poisson2d, elasticity2d or potential3d")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: the family's)")
    p.add_argument("--out", required=True, help="dataset folder (an unfinished one is resumed)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="parallel processes (at most 2)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per sample")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="family option, e.g. h=0.01 (poisson2d mesh size) or cp_clip=-3 (potential3d)")
    p.add_argument("--shapes", nargs="+", help="potential3d bodies: shape names and/or closed surface files or "
                                               "folders of them")
    p.set_defaults(run=_data_make)
    p = data.add_parser("import", help="turn a folder of VTU/VTK/MSH/XDMF files into a dataset")
    p.add_argument("source")
    p.add_argument("--out", required=True)
    p.add_argument("--inputs", default="", help="comma-separated input point fields")
    p.add_argument("--targets", required=True, help="comma-separated target point fields")
    p.add_argument("--cell-to-point", action="store_true", help="average cell fields onto the points")
    p.add_argument("--seed", type=int, default=0, help="seed of the train/val/test split")
    p.set_defaults(run=_data_import)
    p = data.add_parser("info", help="summarise a dataset folder")
    p.add_argument("dir")
    p.set_defaults(run=_data_info)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = _without_nproc(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.run(args)
    except GeoopError as e:
        print(f"geoop: error: {e}", file=sys.stderr)
        return 2
    return 0


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line minus `--nproc N` (what each torchrun worker runs)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--nproc":
            skip = True
        elif not a.startswith("--nproc="):
            out.append(a)
    return out


if __name__ == "__main__":
    sys.exit(main())
