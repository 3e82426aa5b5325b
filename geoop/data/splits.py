"""Train/val/test splits of a dataset: seeded fractions, a split file naming the samples of each split, or a
set of samples held out as the test split (a user's chosen designs)."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from geoop.data.manifest import Manifest, read_manifest
from geoop.data.statistics import field_statistics
from geoop.errors import GeoopError

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)


def parse_fractions(text: str | Iterable[float]) -> tuple[float, float, float]:
    """"0.8,0.1,0.1" (or three numbers) -> train, val, test fractions; they must be >= 0 and sum to 1."""
    try:
        values = [float(v) for v in (text.split(",") if isinstance(text, str) else text)]
    except ValueError as e:
        raise GeoopError(f"--fractions {text!r} is not three numbers", fix="e.g. --fractions 0.8,0.1,0.1") from e
    if len(values) != 3 or min(values) < 0 or abs(sum(values) - 1) > 1e-6:
        raise GeoopError(f"--fractions {text!r}: need three non-negative train,val,test fractions summing to 1",
                         fix="e.g. --fractions 0.8,0.1,0.1 (or 0.9,0.1,0 for no test split)")
    return values[0], values[1], values[2]


def make_splits(indices: Iterable[int], seed: int, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS
                ) -> dict[str, list[int]]:
    """Sample ids into train/val/test by a seeded permutation; each split sorted. A split with a non-zero
    fraction gets at least one sample when there are three or more."""
    ids = np.array(sorted(indices), dtype=np.int64)
    order = ids[np.random.default_rng(seed).permutation(len(ids))]
    n_val = int(round(fractions[1] * len(ids)))
    n_test = int(round(fractions[2] * len(ids)))
    if len(ids) >= 3:
        n_val, n_test = max(n_val, int(fractions[1] > 0)), max(n_test, int(fractions[2] > 0))
    test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
    return {"train": sorted(train.tolist()), "val": sorted(val.tolist()), "test": sorted(test.tolist())}


def read_split_file(path: str | Path) -> dict[str, list[str]]:
    """A JSON file `{"train": [names], "val": [names], "test": [names]}` (any split may be left out)."""
    path = Path(path)
    try:
        table = json.loads(path.read_text())
    except FileNotFoundError as e:
        raise GeoopError("no such split file", path=path) from e
    except json.JSONDecodeError as e:
        raise GeoopError(f"not valid JSON: {e}", path=path,
                         fix='write {"train": ["a.vtu", ...], "val": [...], "test": [...]}') from e
    unknown = set(table) - set(SPLITS) if isinstance(table, dict) else None
    if unknown is None or unknown or not all(isinstance(v, list) for v in table.values()):
        raise GeoopError("a split file maps train, val and test to lists of sample names", path=path,
                         fix='write {"train": ["a.vtu", ...], "val": [...], "test": [...]}')
    return {k: [str(n) for n in table.get(k, [])] for k in SPLITS}


def choose_splits(names: Mapping[int, Iterable[str]], seed: int,
                  fractions: tuple[float, float, float] = DEFAULT_FRACTIONS, split_file: str | Path | None = None,
                  test: Iterable[int] = ()) -> dict[str, list[int]]:
    """Splits of the samples `names` (sample id -> the names it answers to: file name, path, stem).

    With `split_file`, every sample is placed where the file names it (each must be named exactly once).
    Otherwise the ids in `test` form the test split and the rest are split by `fractions` (renormalised over
    train and val when `test` is given); with neither, by `fractions` alone."""
    if split_file is not None:
        table = read_split_file(split_file)
        owner = {n: i for i, aliases in names.items() for n in aliases}
        out: dict[str, list[int]] = {k: [] for k in SPLITS}
        seen: dict[int, str] = {}
        for split, listed in table.items():
            for name in listed:
                if name not in owner:
                    raise GeoopError(f"the split file names {name!r}, which is no sample here", path=split_file,
                                     fix="use the file names (or paths relative to the source folder)")
                i = owner[name]
                if i in seen:
                    raise GeoopError(f"{name!r} is in both {seen[i]!r} and {split!r}", path=split_file)
                seen[i] = split
                out[split].append(i)
        missing = [next(iter(a)) for i, a in names.items() if i not in seen]
        if missing:
            raise GeoopError(f"{len(missing)} samples are in no split, e.g. {missing[:3]}", path=split_file,
                             fix="list every sample under train, val or test")
        return {k: sorted(v) for k, v in out.items()}
    test = sorted(set(test))
    if test:
        rest = [i for i in names if i not in set(test)]
        train_val = fractions[0] + fractions[1]
        if not rest or train_val <= 0:
            raise GeoopError("every sample is in the test split: nothing is left to train on",
                             fix="hold out fewer designs, or give the training files a folder of their own")
        out = make_splits(rest, seed, (fractions[0] / train_val, fractions[1] / train_val, 0.0))
        out["test"] = test
        return out
    return make_splits(names, seed, fractions)


def resplit(root: str | Path, splits: Mapping[str, list[int]]) -> Manifest:
    """Give the finished dataset in `root` new `splits` (and the training statistics that follow from them),
    written atomically; returns the manifest."""
    manifest = read_manifest(root)
    files = manifest.files
    manifest.splits = {k: sorted(int(i) for i in splits.get(k, [])) for k in SPLITS}
    manifest.statistics = field_statistics(root, [files[i] for i in manifest.splits["train"]], manifest.fields)
    manifest.write(root)
    return manifest
