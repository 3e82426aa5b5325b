"""Checkpoints that load without unpickling anything: tensors in safetensors, everything else as JSON in the
same file's metadata (and, for model checkpoints, a readable `.json` twin). Written atomically: a crash while
saving leaves the previous checkpoint intact."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import geoop
from geoop.errors import CorruptFileError, MissingFileError

_TENSOR, _DICT, _TUPLE = "__tensor__", "__dict__", "__tuple__"


def flatten_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """A JSON skeleton of `obj` (nested dicts/lists/tuples of tensors and plain values) whose tensors are moved
    into `tensors` under generated keys. Dict keys keep their type (optimizer states use int keys)."""
    if torch.is_tensor(obj):
        key = f"{prefix}{len(tensors)}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        return {_DICT: [[k, flatten_state(v, tensors, prefix)] for k, v in obj.items()]}
    if isinstance(obj, (list, tuple)):
        items = [flatten_state(v, tensors, prefix) for v in obj]
        return {_TUPLE: items} if isinstance(obj, tuple) else items
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint")


def unflatten_state(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of `flatten_state`."""
    if isinstance(skeleton, dict):
        if _TENSOR in skeleton:
            return tensors[skeleton[_TENSOR]]
        if _TUPLE in skeleton:
            return tuple(unflatten_state(v, tensors) for v in skeleton[_TUPLE])
        return {k: unflatten_state(v, tensors) for k, v in skeleton[_DICT]}
    if isinstance(skeleton, list):
        return [unflatten_state(v, tensors) for v in skeleton]
    return skeleton


def _replace_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_checkpoint(path: str | Path, weights: dict[str, torch.Tensor], meta: dict[str, Any],
                    extra_state: Any = None, json_twin: bool = True) -> Path:
    """Write `weights` (a state dict) and `meta` (JSON) to `path` (.safetensors), plus `extra_state` (e.g. the
    optimizer's) when given, and `meta` as a readable `path.with_suffix('.json')`."""
    path = Path(path)
    tensors = {f"w.{k}": v.detach().cpu().contiguous().clone() for k, v in weights.items()}
    header = {"meta": {**meta, "geoop_version": geoop.__version__}}
    if extra_state is not None:
        header["extra"] = flatten_state(extra_state, tensors, prefix="s")
    _replace_atomically(path, lambda tmp: save_file(tensors, tmp, metadata={"geoop": json.dumps(header)}))
    if json_twin:
        text = json.dumps(header["meta"], indent=1)
        _replace_atomically(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(text))
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any], Any]:
    """`(weights, meta, extra_state)` of a checkpoint written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError("no such checkpoint", path=path,
                               fix="pass the run folder's model.safetensors (written by `geoop train`)")
    try:
        tensors = load_file(path)
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            header = json.loads((f.metadata() or {})["geoop"])
    except (SafetensorError, KeyError, json.JSONDecodeError, OSError) as e:
        raise CorruptFileError(f"not a readable geoop checkpoint ({e})", path=path,
                               fix="point to a .safetensors file written by geoop; retrain if it was damaged") from None
    weights = {k[2:]: v for k, v in tensors.items() if k.startswith("w.")}
    extra = unflatten_state(header["extra"], tensors) if "extra" in header else None
    return weights, header["meta"], extra


def file_hash(path: str | Path) -> str:
    """sha256 of a file (e.g. a dataset manifest), to tie a checkpoint to the data it was trained on."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
