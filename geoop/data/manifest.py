"""The dataset manifest (`manifest.json`): what a dataset is, how it was made, and where its samples are.

A dataset folder holds `manifest.json` and `samples/sample_NNNNNN.npz`, one NPZ per sample. NPZ because it
stores every array losslessly with its dtype and shape (float64 fields, int cells, per-sample parameters of any
shape), loads with numpy alone without XML parsing (about 10x faster than VTU here), and compresses well;
`geoop convert` turns any sample into VTU for ParaView.
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoop.errors import CorruptFileError, MissingFileError

FORMAT = "geoop-dataset"
VERSION = 1
MANIFEST = "manifest.json"
REQUIRED = ("format", "version", "family", "dim", "fields", "samples", "splits")


def sample_file(index: int) -> str:
    """Relative path of sample `index` inside a dataset folder."""
    return f"samples/sample_{index:06d}.npz"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON through a temporary file and a rename: readers never see half a file."""
    write_text_atomic(path, json.dumps(data, indent=1))


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` through a temporary file in the same folder and a rename: readers see the old file or the
    new one, never half of one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_manifest(root: str | Path) -> Manifest:
    """Load and check `root/manifest.json`."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise MissingFileError("no dataset manifest here", path=path,
                               fix="make one with `geoop data make NAME --out DIR` or `geoop data import`")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"the manifest is not valid JSON ({e})", path=path,
                               fix="restore it, or rerun the same `geoop data make` command: it rebuilds the "
                                   "manifest from the sample files") from e
    if not isinstance(raw, dict):
        raise CorruptFileError("not a geoop dataset manifest (not a JSON object)", path=path)
    return Manifest.from_dict(raw, path)


@dataclass
class Manifest:
    """A dataset's `manifest.json` as typed fields (`read_manifest` returns one, `write` saves one atomically).

    `family`: the generator's name ("imported" for a user's files); `dim`: 2 or 3; `fields`: {"inputs": {name:
    spec}, "targets": {name: spec}}, a spec holding `components`, `units`, `description` and `mask` (the 0/1
    point field a boundary-data field lives on); `samples`: one record per sample file ({"index", "file",
    "n_points", "seconds", "values": the sample's parameters, ...}); `splits`: {"train"|"val"|"test": [index]};
    `status`: "complete" or "incomplete" (a generation still running or interrupted); `failures`: samples that
    could not be made ({"index", "reason"}); `unconverged`: samples whose solver did not converge (kept, left
    out of the splits); `statistics`: per-field statistics over the training split; `options`, `seed`,
    `solver`, `versions`, `description`: how it was made; `forces`, `body`: a flow family's force
    specification and body mask. Keys this version does not know are kept in `extra` and written back."""

    family: str
    dim: int
    fields: dict[str, dict[str, dict[str, Any]]]
    samples: list[dict[str, Any]] = field(default_factory=list)
    splits: dict[str, list[int]] = field(default_factory=dict)
    status: str = "complete"
    description: str = ""
    seed: int | None = None
    options: dict[str, Any] = field(default_factory=dict)
    solver: str | None = None
    versions: dict[str, str] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    unconverged: list[int] | None = None
    statistics: dict[str, Any] | None = None
    forces: dict[str, Any] | None = None
    body: str | None = None
    n_requested: int | None = None
    seconds_per_sample: dict[str, float] | None = None
    points_per_sample: dict[str, int] | None = None
    version: int = VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], path: Path | None = None) -> Manifest:
        """Check and type a manifest's JSON; unknown keys go to `extra`."""
        missing = [k for k in REQUIRED if k not in raw]
        if missing or raw.get("format") != FORMAT:
            raise CorruptFileError(f"not a geoop dataset manifest (missing {missing or 'format tag'})", path=path)
        if raw["version"] > VERSION:
            raise CorruptFileError(f"manifest version {raw['version']} is newer than this geoop reads ({VERSION})",
                                   path=path, fix="upgrade geoop")
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in raw.items() if k in names}
        return cls(**known, extra={k: v for k, v in raw.items() if k not in names and k != "format"})

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape: `format` first, optional keys only when set, `extra` kept."""
        out: dict[str, Any] = {"format": FORMAT}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name != "extra" and (value is not None or f.name in REQUIRED):
                out[f.name] = value
        return {**out, **self.extra}

    def write(self, root: str | Path) -> None:
        """Save as `root/manifest.json`, atomically."""
        write_json_atomic(Path(root) / MANIFEST, self.to_dict())

    @property
    def files(self) -> dict[int, str]:
        """{sample index: its file, relative to the dataset folder}."""
        return {int(r["index"]): r["file"] for r in self.samples}

    @property
    def specs(self) -> dict[str, dict[str, Any]]:
        """{field name: spec} of inputs and targets together."""
        return {**self.fields["inputs"], **self.fields["targets"]}
