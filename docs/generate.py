"""Write the generated parts of the documentation: benchmark tables from `benchmarks/results/*.json` and the
command-line reference from geoop's argparse parser. Nothing between the markers is edited by hand.

A generated block in a Markdown file sits between `<!-- generated: NAME -->` and `<!-- end generated -->`;
`docs/cli.md` is generated whole.

    python docs/generate.py          # rewrite the blocks and docs/cli.md
    python docs/generate.py --check  # exit 1 naming every stale file (the test suite runs this)
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy  # noqa: E402
import kdtree_fno  # noqa: E402
import motorbike  # noqa: E402
import online  # noqa: E402
import predict_grid  # noqa: E402
import step_cost  # noqa: E402
import train_memory  # noqa: E402
import trust  # noqa: E402

#: the documents that hold generated blocks
DOCUMENTS = ["README.md", "docs/index.md", "docs/benchmarks.md", "docs/trust.md"]
BLOCK = re.compile(r"(<!-- generated: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end generated -->)", re.S)


def _json(name: str) -> dict:
    return json.loads((RESULTS / name).read_text())


def _number(error: float | None) -> str:
    """A table entry: the error to four places, or a dash where there is none."""
    return f"{error:.4f}" if error is not None else "-"


def headline() -> str:
    """Per dataset: geoop's best model against both neuraloperator baselines and the non-learned one (test rel.
    L2, mean over fields, 900 CPU-seconds of training)."""
    everything = _json("accuracy.json")["cells"].values()
    cells = [c for c in everything if "failed" not in c]
    failed = {(c["dataset"], c["model"]) for c in everything if "failed" in c}
    rows = ["| dataset | best geoop model | neuraloperator FNO | neuraloperator GINO | non-learned | "
            "vs the better neuraloperator |", "|---|---|---|---|---|---|"]
    for dataset in accuracy.DATASETS:
        mine = {c["model"]: c["test_rel_l2_mean"] for c in cells if c["dataset"] == dataset}
        ours = {m: e for m, e in mine.items() if m in accuracy.GEOOP}
        if not ours:
            continue
        best = min(ours, key=ours.get)
        outside = [mine[m] for m in accuracy.BASELINES if m in mine]
        if not outside:  # a family whose outside baselines have not run yet has no headline
            continue
        plain = [mine[m] for m in accuracy.NONLEARNED if m in mine]
        fno, gino = ("failed" if (dataset, m) in failed else _number(mine.get(m))
                     for m in ("neuralop_fno", "neuralop_gino"))
        gain = f"{ours[best] / min(outside) - 1:+.0%}"
        rows.append(f"| {dataset} | {best} {ours[best]:.4f} | {fno} | {gino} | "
                    f"{_number(min(plain) if plain else None)} | {gain} |")
    return "\n".join(rows) + "\n"


def flow_family(dataset: str = "airfoil2d") -> str:
    """Per model on a flow family: the test error of each field and of the force coefficients integrated from
    the predicted surface, best mean first."""
    cells = sorted((c for c in _json("accuracy.json")["cells"].values()
                    if c["dataset"] == dataset and "failed" not in c), key=lambda c: c["test_rel_l2_mean"])
    if not cells:
        return "(no cells yet)\n"
    fields = list(cells[0]["test"])
    rows = ["| model | mean | " + " | ".join(fields) + " | Cl MAE | Cl Spearman | Cd MAE | Cd Spearman | epochs |",
            "|---|---|" + "---|" * len(fields) + "---|---|---|---|---|"]
    for c in cells:
        f = c.get("test_forces", {})
        force = " | ".join(f"{f[k]['mae']:.4f} | {f[k]['spearman']:.3f}" if k in f else "- | -" for k in ("cl", "cd"))
        rows.append(f"| {c['model']} | {c['test_rel_l2_mean']:.4f} | "
                    + " | ".join(f"{c['test'][n]['rel_l2']:.4f}" for n in fields) + f" | {force} | {c['epochs']} |")
    return "\n".join(rows) + "\n"


def prediction_summary() -> str:
    """Per model: seconds for 100k / 1M / 4M queries, the decode's growth, peak RSS, and the old way at 1M."""
    result = _json("predict_scale.json")
    rows = result["rows"]
    lines = ["| model | 100k queries | 1M | 4M | decode 4M / 1M | peak RSS 100k / 1M / 4M MB | 1M the old way |",
             "|---|---|---|---|---|---|---|"]
    for model in dict.fromkeys(r["model"] for r in rows):
        now = {r["queries"]: r for r in rows if r["model"] == model and r["way"] == "encode once"}
        old = {r["queries"]: r for r in rows if r["model"] == model and r["way"] == "per chunk"}
        secs = " | ".join(f"{now[q]['seconds']:.1f} s" if q in now else "-" for q in (100_000, 1_000_000, 4_000_000))
        rss = " / ".join(f"{now[q]['peak_rss_mb']:.0f}" if q in now else "-" for q in (100_000, 1_000_000, 4_000_000))
        ratio = result["summary"].get(model, {}).get("decode_4M_over_1M")
        million = old.get(1_000_000)
        before = f"{million['seconds']:.1f} s, {million['peak_rss_mb']:.0f} MB" if million else "-"
        lines.append(f"| {model} | {secs} | {ratio:.2f} | {rss} | {before} |" if ratio else
                     f"| {model} | {secs} | - | {rss} | {before} |")
    return "\n".join(lines) + "\n"


def kdtree_study() -> str:
    kd = _json("kdtree_fno.json")
    return kdtree_fno.table(kd["transfer"], _json("accuracy.json")["cells"], kdtree_fno.DATASETS)[0]


BLOCKS: dict[str, Callable[[], str]] = {
    "headline": headline,
    "airfoil2d": flow_family,
    "body3d": lambda: flow_family("body3d"),
    "accuracy": lambda: accuracy.table(_json("accuracy.json")),
    "kdtree_fno": kdtree_study,
    "predict_scale": prediction_summary,
    "train_memory": lambda: train_memory.table(_json("train_memory.json")),
    "step_cost": lambda: step_cost.table(_json("step_cost.json")),
    "predict_grid": lambda: predict_grid.table(_json("predict_grid.json")),
    "motorbike": lambda: motorbike.table(_json("motorbike.json")),
    "online": lambda: (online.table(_json("online.json")) + "\n![online training](../benchmarks/results/online.png)\n"
                       if (RESULTS / "online.json").is_file() else "(not run yet: `python benchmarks/online.py`)\n"),
    "trust": lambda: trust.table(_json("trust.json")["cells"]) + "\n![reliability diagram](../benchmarks/results/"
                     "trust.png)\n",
}


def cli_reference() -> str:
    """Every command's and subcommand's `--help`, as the command line prints it at 100 columns."""
    os.environ["COLUMNS"] = "100"
    from geoop.cli import build_parser

    parts = ["# Command-line reference", "",
             "Generated by `python docs/generate.py` from geoop's argparse parser: each command's `--help`.", ""]

    def walk(parser: argparse.ArgumentParser, name: str) -> None:
        parts.extend([f"## `{name}`", "", "```text", parser.format_help().rstrip(), "```", ""])
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    walk(child, f"{name} {sub}")

    walk(build_parser(), "geoop")
    return "\n".join(parts)


def render(text: str, path: str) -> str:
    """`text` with each generated block replaced by its current content; an unknown block name is an error."""
    def one(match: re.Match) -> str:
        name = match["name"]
        if name not in BLOCKS:
            raise SystemExit(f"{path}: unknown generated block {name!r}; known: {', '.join(BLOCKS)}")
        return match.group(1) + "\n" + BLOCKS[name]().rstrip("\n") + "\n\n" + match.group(4)

    return BLOCK.sub(one, text)


def outputs() -> dict[Path, str]:
    """Every generated file's intended content."""
    files = {ROOT / "docs" / "cli.md": cli_reference()}
    for doc in DOCUMENTS:
        files[ROOT / doc] = render((ROOT / doc).read_text(), doc)
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    args = ap.parse_args()
    files = outputs()
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date: run python docs/generate.py", file=sys.stderr)
        raise SystemExit(1 if stale else 0)
    for path in stale:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(files[path])
        tmp.replace(path)
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
