"""The dataset manifest (`manifest.json`): what a dataset is, how it was made, and where its samples are.

A dataset folder holds `manifest.json` and `samples/sample_NNNNNN.npz`, one NPZ per sample. NPZ because it
stores every array losslessly with its dtype and shape (float64 fields, int cells, per-sample parameters of any
shape), loads with numpy alone without XML parsing (about 10x faster than VTU here), and compresses well;
`geoop convert` turns any sample into VTU for ParaView.
"""
from __future__ import annotations

import json
import os
import tempfile
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


def read_manifest(root: str | Path) -> dict[str, Any]:
    """Load and check `root/manifest.json`."""
    path = Path(root) / MANIFEST
    if not path.is_file():
        raise MissingFileError("no dataset manifest here", path=path,
                               fix="make one with `geoop data make NAME --out DIR` or `geoop data import`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"the manifest is not valid JSON ({e})", path=path,
                               fix="restore it, or rerun the same `geoop data make` command: it rebuilds the "
                                   "manifest from the sample files") from e
    missing = [k for k in REQUIRED if k not in manifest]
    if missing or manifest.get("format") != FORMAT:
        raise CorruptFileError(f"not a geoop dataset manifest (missing {missing or 'format tag'})", path=path)
    if manifest["version"] > VERSION:
        raise CorruptFileError(f"manifest version {manifest['version']} is newer than this geoop reads "
                               f"({VERSION})", path=path, fix="upgrade geoop")
    return manifest
