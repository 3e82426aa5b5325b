"""The `geoop` command: `info`, `convert`, `demo`, `gallery`, `data`, `train`, `evaluate`, `predict`."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import geoop
from geoop.errors import GeoopError
from geoop.heap import restart_with_quiet_heap
from geoop.trust.levels import CONFIDENCE, NOVELTY_LEVEL

#: the kinds of files a closed body surface can come in (--shapes, --test-from): bare surfaces and meshes
SURFACE_KINDS = ("surface", "mesh")


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


def _config_show(args: argparse.Namespace) -> None:
    import yaml

    from geoop.training.config import load_config

    config = load_config(args.config, list(args.set or []), need_data=False)
    print(yaml.safe_dump(config.to_dict(defaults=True), sort_keys=False).rstrip())


def _train(args: argparse.Namespace) -> None:
    from geoop.training.distributed import launched_by_torchrun
    from geoop.training.config import load_config
    from geoop.training.run import train

    overrides = list(args.set or []) + ([f"out={args.out}"] if args.out else [])
    if args.online:
        overrides = ["train.clock=wall", f"online.family={args.online}"] + overrides + \
            [f"online.{k}={getattr(args, k)}" for k in ("workers", "select") if getattr(args, k) is not None]
    config = load_config(args.config, overrides)  # a bad config fails here, before any process is started
    if config.online.family is not None:
        _train_online(config, args.nproc)
        return
    if args.nproc > 1 and not launched_by_torchrun():
        _launch(args.nproc, args.argv)
        return
    result = train(config)
    if result["rank"] != 0:
        return
    if result["test"] is None:
        print(f"no test split in {config.data.root}: no test error to report (see the warning above)")
    else:
        _print_metrics(result["test"], f"test split of {result['out']}")
    print(f"model: {result['out']}/model.safetensors (+ .json), curve data: {result['out']}/metrics.jsonl")


def _train_online(config: "RunConfig", nproc: int) -> None:  # noqa: F821 (imported on use: a fast --help)
    from geoop.training.online import train_online

    if nproc > 1:
        raise GeoopError("online training runs in one process beside its solver workers",
                         fix="leave --nproc out; set the solver's share with --workers")
    result = train_online(config)
    val = result["history"][-1].get("val_rel_l2") if result["history"] else None
    print(f"{result['samples']} training samples made into {result['data']} while training"
          + (f"; validation rel. L2 {val:.4f}" if val is not None else "")
          + f"; the solver waited {result['solver_idle_seconds']:.1f} s for work in all")
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

    metrics = evaluate_checkpoint(args.checkpoint, args.data, args.split, confidence=args.confidence,
                                  level=args.level)
    _print_metrics(metrics, f"{args.split} split of {args.data}")
    trust = metrics.get("trust")
    if trust is None:
        print("error bands unavailable: the model has no calibration (retrain it with a validation split)")
    else:
        print(f"calibrated on {trust['calibrated_on']['samples']} {trust['calibrated_on']['split']} samples "
              f"({trust['scale']} scale); coverage of the {trust['confidence']:.0%} bands:")
        for name, c in trust["coverage"].items():
            print(f"  {name:12s} points {c['point_coverage']:.3f}, samples {c['sample_coverage']:.3f}, "
                  f"band width {c['relative_band_width']:.3g} x the field's RMS")
        if trust["samples"]:
            print(f"  {trust['flagged']} of {len(trust['samples'])} geometries flagged as unlike the training set "
                  f"(novelty p < {trust['level']:g})")
    out = Path(args.json) if args.json else Path(args.checkpoint).parent / f"evaluate_{args.split}.json"
    write_json_atomic(out, metrics)
    print(f"wrote {out}")


def _print_metrics(metrics: dict, what: str) -> None:
    print(f"{what}: {metrics['samples']} samples")
    print(f"{'field':16s} {'rel L2 (mean)':>14s} {'rel L2 (median)':>16s} {'max error':>12s}")
    for name, m in metrics["fields"].items():
        print(f"{name:16s} {m['rel_l2']:14.4f} {m['rel_l2_median']:16.4f} {m['max_error']:12.4g}")
    for key, against in (("forces", "the true surface fields integrated alike"),
                         ("forces_vs_solver", "the solver's own coefficients")):
        if key in metrics:
            print(f"force coefficients from the predicted surface, against {against}:")
            for name, m in metrics[key].items():
                print(f"  {name:4s} mean |error| {m['mae']:.4g}, R^2 {m['r2']:.4f}, Spearman {m['spearman']:.4f}")


def _predict(args: argparse.Namespace) -> None:
    from geoop.training.config import parse_value
    from geoop.workflow.predict import predict_file

    constants = {}
    for item in args.constant or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise GeoopError(f"--constant {item!r} is not NAME=VALUE", fix="e.g. --constant freestream=[1,0,0]")
        constants[key.strip()] = parse_value(value)
    made = predict_file(args.checkpoint, args.geometry, args.out, args.query, constants, args.chunk,
                        args.query_columns, args.surface, generate={"grid": args.query_grid,
                                                                    "random": args.query_random,
                                                                    "surface": args.query_surface},
                        read=_read_options(args), confidence=args.confidence, level=args.level)
    print(f"predicted {', '.join(made.errors)} at {made.geometry.n_points} points (in the order of the input file)")
    for line in made.trust.lines():
        print(line)
    for name, e in made.errors.items():
        if e is not None:
            print(f"  {name}: relative L2 {e:.4f} against the {name!r} field of the input ({name}_true)")
    if made.forces:
        p, t = made.forces["predicted"], made.forces["true"]
        truth = lambda name: f" (from the input's fields: {getattr(t, name):.4f})" if t else ""  # noqa: E731
        print(f"  force coefficients from the predicted surface: Cl {p.cl:.4f}{truth('cl')}, "
              f"Cd {p.cd:.5f}{truth('cd')}")
    surface = made.picture.with_name(Path(made.written).stem + "_surface.png")
    extra = f" and {surface}" if made.forces and surface.is_file() else ""
    print(f"wrote {made.written} and {made.picture}{extra}")
    logging.getLogger(__name__).info("seconds: " + ", ".join(f"{k} {v:.2f}" for k, v in made.seconds.items()))
    if args.json:
        from geoop.data.manifest import write_json_atomic

        forces = {k: None if v is None else v.to_dict() for k, v in (made.forces or {}).items()}
        write_json_atomic(Path(args.json), {"errors": made.errors, "forces": forces, "trust": made.trust.to_dict(),
                                            "written": str(made.written), "seconds": made.seconds})
        print(f"wrote {args.json}")


def _read_options(args: argparse.Namespace) -> "ReadOptions":  # noqa: F821 (imported on use: a fast --help)
    """How a file or case is read (--columns, --patches, --time, --blocks, --at, --cp, --cell-to-point)."""
    from geoop.data.read_options import ReadOptions

    try:
        time = None if args.time in (None, "latest") else float(args.time)
    except ValueError:
        raise GeoopError(f"--time {args.time!r} is not a number", fix="e.g. --time 500, or leave it out for the "
                                                                      "latest") from None
    return ReadOptions(columns=args.columns, patches=args.patches, time=time, blocks=args.blocks, at=args.at,
                       cp=None if not args.cp else tuple(args.cp.split(",")), cell_to_points=args.cell_to_point)


def _trust_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--confidence", type=float, default=CONFIDENCE,
                   help="probability the error bands hold the truth with (calibrated models; default 0.9)")
    p.add_argument("--level", type=float, default=NOVELTY_LEVEL,
                   help="flag a geometry as unlike the training set when its novelty p-value is below this")


def _cfd_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--patches", default=None, metavar="NAMES",
                   help="OpenFOAM cases: boundary patches to read, merged into one surface (names, wildcards "
                        "or regular expressions, comma-separated, e.g. 'motorBike*'); default: the internal mesh")
    p.add_argument("--time", default=None, help="OpenFOAM cases: the time to read (default: the latest)")
    p.add_argument("--blocks", default=None, metavar="NAMES", help="VTM multiblocks: the blocks to read and merge "
                                                                   "(names or wildcards; default: all)")
    p.add_argument("--at", default="points", choices=("points", "cells"),
                   help="points: the mesh nodes; cells: one point per cell at its centre, cell fields as they are")
    p.add_argument("--cp", default=None, metavar="FIELD,RHO,U_INF,P_INF",
                   help="add the field cp = (FIELD - P_INF) / (RHO U_INF^2 / 2); numbers or parameter names "
                        "(OpenFOAM's incompressible p is p/rho: RHO 1)")
    p.add_argument("--cell-to-point", action="store_true", help="average cell fields onto the points (by volume "
                                                                "or area)")


def _body_families() -> list[str]:
    """The families whose samples are flows around bodies a user can name (`--shapes`)."""
    from geoop.data.families import FAMILIES, get_family

    return [name for name in FAMILIES if get_family(name).shapes]


def _data_make(args: argparse.Namespace) -> None:
    from geoop.data import generate
    from geoop.data.families.potential3d import samples_with_bodies
    from geoop.data.importer import find_files
    from geoop.data.families import get_family
    from geoop.data.splits import choose_splits, parse_fractions, resplit
    from geoop.io import extensions
    from geoop.training.config import parse_value

    surfaces = extensions(SURFACE_KINDS)
    options = {}
    for item in args.set or []:
        key, _, value = item.partition("=")
        options[key.strip()] = parse_value(value)
    family = get_family(args.name)
    if args.shapes:
        if not family.shapes:
            raise GeoopError(f"{args.name} draws no bodies: --shapes is for {', '.join(_body_families())}")
        names = [s for s in args.shapes if s in family.shapes]
        files: list[str] = []
        for s in args.shapes:
            if s in family.shapes:
                continue
            if not Path(s).exists():
                raise GeoopError(f"{s!r} is neither a shape name ({', '.join(family.shapes)}) nor a file or folder")
            files += [str(f) for f in find_files(s, surfaces)]
        options["shapes"] = tuple(names)
        options["surface_files"] = tuple(files)
    test_files: list[str] = []
    if args.test_from:
        if args.name != "potential3d":
            raise GeoopError(f"--test-from takes body surfaces, which only potential3d uses (not {args.name})",
                             fix="hold samples out with --split-file (names sample_000012, ...) instead")
        test_files = [str(f) for f in find_files(args.test_from, surfaces)]
        options["surface_files"] = tuple(options.get("surface_files", ())) + tuple(test_files)
        options.setdefault("shapes", family.shapes)
    fractions = parse_fractions(args.fractions) if args.fractions else family.splits
    m = generate(args.name, args.out, n=args.n, seed=args.seed, workers=args.workers, timeout=args.timeout,
                 splits=fractions, keep_unconverged=args.keep_unconverged, **options)
    if args.split_file or test_files:
        names = {r["index"]: {Path(r["file"]).stem, str(r["index"])} for r in m.samples}
        test = samples_with_bodies(args.out, m, test_files) if test_files else []
        m = resplit(args.out, choose_splits(names, args.seed, fractions, args.split_file, test))
    _print_dataset(m, args.out)


def _data_import(args: argparse.Namespace) -> None:
    from geoop.data.importer import import_folder
    from geoop.data.splits import DEFAULT_FRACTIONS, parse_fractions

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else []  # noqa: E731
    masks = {}
    for item in split(args.mask):
        field, sep, mask = item.partition("=")
        if not sep:
            raise GeoopError(f"--mask {item!r} is not FIELD=MASK", fix="e.g. --mask g=dirichlet,flux=neumann")
        masks[field.strip()] = mask.strip()
    fractions = parse_fractions(args.fractions) if args.fractions else DEFAULT_FRACTIONS
    m = import_folder(args.source, args.out, split(args.inputs), split(args.targets), _read_options(args),
                      seed=args.seed, fractions=fractions, split_file=args.split_file, test_from=args.test_from,
                      masks=masks, params_table=args.params)
    _print_dataset(m, args.out)


def _data_info(args: argparse.Namespace) -> None:
    import numpy as np

    from geoop.data import read_manifest
    from geoop.data.statistics import mesh_spacing

    m = read_manifest(args.dir)
    _print_dataset(m, args.dir)
    records = m.samples
    picked = records[:: max(1, len(records) // 20)][:20]
    spacing = mesh_spacing([geoop.load(Path(args.dir) / r["file"], sort=False) for r in picked])
    if spacing:
        p = spacing["percentiles"]
        print(f"  mesh spacing (shortest edge at a node, {spacing['samples']} samples): "
              + ", ".join(f"{k} {v:.3g}" for k, v in p.items()) + f"; grading p99/p1 {spacing['grading']:.0f}x")
    values = [r.get("values", {}) for r in records]
    if any("converged" in v for v in values):
        iterations = [v["iterations"] for v in values if "iterations" in v]
        cpu = [v["solver_cpu_seconds"] for v in values if "solver_cpu_seconds" in v]
        print(f"  solver: {sum(v.get('converged', 1) == 1 for v in values)} of {len(values)} converged "
              f"(unconverged, outside the splits: {(m.unconverged or [])[:10]}"
              f"{' ...' if len(m.unconverged or []) > 10 else ''}); iterations median "
              f"{np.median(iterations):.0f}, max {max(iterations):.0f}"
              + (f"; solver CPU s per case mean {np.mean(cpu):.1f}, max {max(cpu):.1f}" if cpu else ""))


def _print_dataset(m: "Manifest", root) -> None:  # noqa: F821 (imported on use: a fast --help)
    print(f"dataset {root}: {m.family} ({m.dim}D), {len(m.samples)} samples, status {m.status}")
    print("  splits: " + ", ".join(f"{k} {len(v)}" for k, v in m.splits.items()))
    if m.points_per_sample and m.seconds_per_sample:
        pps, sps = m.points_per_sample, m.seconds_per_sample
        print(f"  points per sample {pps['min']}..{pps['max']}, seconds per sample {sps['mean']:.2f} "
              f"(max {sps['max']:.2f})")
    for role in ("inputs", "targets"):
        for name, spec in m.fields[role].items():
            st = (m.statistics or {}).get(name)
            rng = f" range [{min(st['min']):.3g}, {max(st['max']):.3g}]" if st else ""
            mask = f" on {spec['mask']}" if spec.get("mask") else ""
            print(f"  {role[:-1]:6s} {name:12s} x{spec['components']} [{spec['units']}]{mask}{rng}")
    if m.failures:
        print(f"  {len(m.failures)} failed samples (skipped): " +
              "; ".join(f"{f['index']}: {f['reason']}" for f in m.failures[:5]))


def _command(sub, name: str, help: str, example: str, run) -> argparse.ArgumentParser:
    """A subcommand whose help ends with an example line."""
    p = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                       epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)
    return p


def _group(sub, name: str, help: str, example: str):
    """A command with subcommands (`geoop NAME ...`): its parser's subcommand collection."""
    group = sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".",
                           epilog=f"example:\n  {example}", formatter_class=argparse.RawDescriptionHelpFormatter)
    return group.add_subparsers(dest=f"{name}_command", required=True)


def _split_options(p: argparse.ArgumentParser, test_from: str) -> None:
    p.add_argument("--seed", type=int, default=0, help="seed of the random train/val/test split")
    p.add_argument("--fractions", default=None, metavar="TRAIN,VAL,TEST",
                   help="fractions of the random split (default 0.8,0.1,0.1; e.g. 0.9,0.1,0 for no test split)")
    p.add_argument("--split-file", default=None, metavar="JSON",
                   help='names of the samples of each split: {"train": [...], "val": [...], "test": [...]}')
    p.add_argument("--test-from", default=None, metavar="FOLDER", help=test_from)


def build_parser() -> argparse.ArgumentParser:
    from geoop.data.importer import importable

    ap = argparse.ArgumentParser(prog="geoop", description="Geometric neural operators on arbitrary geometry.",
                                 epilog="example:\n  geoop demo --out out/demo",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--version", action="version", version=f"geoop {geoop.__version__}")
    ap.add_argument("-v", "--verbose", action="store_true", help="log what geoop chooses (backends, sizes)")
    sub = ap.add_subparsers(dest="command", required=True)
    p = _command(sub, "info", "summarise a geometry file", "geoop info meshes/plate_with_holes.msh --json", _info)
    p.add_argument("file", help="any geometry file geoop reads (STL, OBJ, PLY, VTU, MSH, XDMF, CSV, NPY, ...)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = _command(sub, "convert", "convert between formats (e.g. MSH -> VTU, STL -> PLY)",
                 "geoop convert meshes/plate_with_holes.msh plate.vtu", _convert)
    p.add_argument("input", help="the file to read")
    p.add_argument("output", help="target file; its extension picks the format (.vtu .vtk .ply .npz ...)")
    p = _command(sub, "demo", "the main job: make data, train, evaluate, predict at unseen points",
                 "geoop demo --out out/demo --budget 240", _demo)
    p.add_argument("--out", default="out/demo", help="output folder (data, run, metrics.json, VTU, PNG)")
    p.add_argument("--n", type=int, default=400, help="samples to generate")
    p.add_argument("--budget", type=float, default=240.0, help="training CPU-seconds (the stopping rule)")
    p.add_argument("--epochs", type=int, default=None, help="stop after this many epochs if the budget lasts longer")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="config override, e.g. model.hidden=64")
    p = _command(sub, "gallery", "load every example geometry, derive boundaries/SDF/graphs, draw them",
                 "geoop gallery --out out/gallery", _gallery)
    p.add_argument("--out", default="out/gallery", help="output folder (PNG, VTU, summary.json)")
    p.add_argument("--meshes", default=None, help="folder of geometries (default: the repository's meshes/)")
    p = _command(sub, "train", "train a model from a YAML config (resumes an interrupted run)",
                 "geoop train --config configs/fno_poisson2d.yaml --set data.root=data/poisson --out runs/fno",
                 _train)
    p.add_argument("--config", default=None, help="YAML file (see configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.budget=900")
    p.add_argument("--out", default=None, help="run folder (overrides the config's `out`)")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine (torchrun; gloo on CPU, NCCL on GPUs)")
    p.add_argument("--online", default=None, metavar="FAMILY",
                   help="train while FAMILY's solver makes the data into data.root (train.budget: wall seconds; "
                        "see docs/online.md)")
    p.add_argument("--workers", type=int, default=None, help="online: solver processes beside the trainer (1)")
    p.add_argument("--select", default=None, choices=("random", "diversity", "uncertainty"),
                   help="online: how the next design is chosen (random)")
    config = _group(sub, "config", "inspect training configs",
                    "geoop config show configs/fno_poisson2d.yaml --set train.budget=300")
    p = _command(config, "show", "print a config as training would resolve it, defaults included",
                 "geoop config show configs/fno_poisson2d.yaml --set train.budget=300", _config_show)
    p.add_argument("config", help="YAML file (see configs/)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override, e.g. train.budget=900")
    p = _command(sub, "evaluate", "per-field errors of a trained model on a dataset split",
                 "geoop evaluate --checkpoint runs/fno/model.safetensors --data data/poisson --split test",
                 _evaluate)
    p.add_argument("--checkpoint", required=True, help="model.safetensors of a run")
    p.add_argument("--data", required=True, help="dataset folder")
    p.add_argument("--split", default="test", help="train, val, test or all")
    _trust_options(p)
    p.add_argument("--json", default=None, help="where to write the metrics (default: beside the checkpoint)")
    p = _command(sub, "predict", "predict fields on a geometry file; writes VTU (or any format) + PNG",
                 "geoop predict --checkpoint runs/fno/model.safetensors --geometry part.vtu --out pred.vtu",
                 _predict)
    p.add_argument("--checkpoint", required=True, help="model.safetensors of a run")
    p.add_argument("--geometry", required=True, help="geometry file carrying the model's input fields; the output "
                                                     "keeps its point order, cells and fields")
    p.add_argument("--query", default=None, help="file whose points to predict at (default: the geometry's)")
    p.add_argument("--out", required=True, help="output file, e.g. prediction.vtu (a PNG is written beside it)")
    p.add_argument("--constant", action="append", metavar="NAME=VALUE",
                   help="an input field that is the same everywhere, e.g. freestream=[1,0,0]")
    p.add_argument("--chunk", type=int, default=200_000, help="query points per pass (bounds memory)")
    p.add_argument("--columns", default=None, metavar="NAMES",
                   help="names of the columns of a headerless CSV/TXT/NPY geometry, e.g. x,y,z,k,f")
    p.add_argument("--query-columns", default=None, metavar="NAMES", help="the same for the --query file")
    p.add_argument("--query-grid", default=None, metavar="NXxNYxNZ",
                   help="predict on a box grid over the geometry (VTU with cells: ParaView slices it; the field "
                        "`inside` masks what lies outside the domain)")
    p.add_argument("--query-random", type=int, default=None, metavar="N", help="predict at N random points inside")
    p.add_argument("--query-surface", type=int, default=None, metavar="N",
                   help="predict at N random points on the boundary")
    _trust_options(p)
    p.add_argument("--json", default=None, metavar="FILE", help="also write the errors, forces and the trust report "
                                                               "(bands, error bound, novelty) as JSON")
    p.add_argument("--surface", default=None, metavar="FILE",
                   help="the surface or mesh a point-cloud --geometry samples (its signed distance feeds models "
                        "trained with one)")
    _cfd_options(p)

    data = _group(sub, "data", "make, import and inspect datasets",
                  "geoop data make poisson2d --n 200 --out data/poisson")
    p = _command(data, "make", "generate a dataset with a reference solver (needs geoop[data])",
                 "geoop data make poisson2d --n 200 --out data/poisson --fractions 0.8,0.1,0.1", _data_make)
    p.add_argument("name", help="poisson2d, elasticity2d, potential3d, airfoil2d or body3d")
    p.add_argument("--n", type=int, default=None, help="number of samples (default: the family's)")
    p.add_argument("--out", required=True, help="dataset folder (an unfinished one is resumed)")
    p.add_argument("--workers", type=int, default=1, help="parallel processes (at most 2)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds allowed per sample")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="family option, e.g. h=0.01 (poisson2d mesh size), cp_clip=-3 (potential3d), "
                        "first_cell=2e-4 (airfoil2d), levels=3,4 (body3d)")
    p.add_argument("--keep-unconverged", action="store_true",
                   help="put samples whose solver did not converge into the splits too (they are always kept "
                        "and flagged; by default no split uses them)")
    p.add_argument("--shapes", nargs="+", help="bodies of potential3d (ellipsoid, rounded_box, capsule, car) or "
                                               "body3d (ahmed): shape names and/or closed surface files or "
                                               "folders of them")
    _split_options(p, "potential3d: a folder of closed body surfaces drawn among the others; the samples "
                      "around them form the test split")
    p = _command(data, "import", "turn a folder of simulation files, point clouds or OpenFOAM cases into a dataset",
                 "geoop data import results/ --out data/mine --inputs k --targets u --test-from results/held_out",
                 _data_import)
    p.add_argument("source", help=f"a folder of {'/'.join(e[1:].upper() for e in importable())} files or OpenFOAM "
                                  "cases (searched recursively, links followed), or one file or case")
    p.add_argument("--out", required=True, help="new dataset folder (an existing dataset is never overwritten)")
    p.add_argument("--inputs", default="", help="comma-separated input point fields")
    p.add_argument("--targets", required=True, help="comma-separated target point fields")
    p.add_argument("--mask", default="", metavar="FIELD=MASK,...",
                   help="fields that apply only where a 0/1 point field is 1, e.g. g=dirichlet (boundary data)")
    p.add_argument("--columns", default=None, metavar="NAMES",
                   help="names of the columns of headerless CSV/TXT/NPY point clouds, e.g. x,y,z,k,u")
    p.add_argument("--params", default=None, metavar="CSV",
                   help="a table of case (or file) name -> scalar parameters, which become constant inputs "
                        "(default: each case's params.json)")
    _cfd_options(p)
    _split_options(p, "a folder of held-out designs: all its files form the test split (inside or outside SOURCE)")
    p = _command(data, "info", "summarise a dataset folder", "geoop data info data/poisson", _data_info)
    p.add_argument("dir", help="dataset folder (with manifest.json)")
    return ap


#: the commands that train (or may): the `geoop` program restarts once for them with a quieter heap
TRAINING_COMMANDS = ("train", "demo")


def main(argv: list[str] | None = None) -> int:
    """The `geoop` program (`argv=None`: the process's command line) or one command run in-process."""
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)  # the global options take no values
    if from_command_line and command in TRAINING_COMMANDS:
        restart_with_quiet_heap()  # a heap that does not grow over steps (see geoop.heap); before any import
    args = build_parser().parse_args(argv)
    args.argv = _without_nproc(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    try:
        args.run(args)
    except GeoopError as e:
        print(f"geoop: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        resumes = args.command in ("train", "data")
        print(f"geoop: {args.command} interrupted" + ("; what it finished is kept and the same command resumes"
                                                       if resumes else ""), file=sys.stderr)
        return 130
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
