"""Per-sample prepared structures (graphs, grids, interpolation matrices) kept on disk beside the dataset, so
that a training process holds only the batch it works on, whatever the number of samples.

Each sample's structure is one safetensors file (no pickle: tensors, plus JSON naming the fields), written
atomically; index tensors are stored as int32 where they fit. A store lives in a folder named by a hash of
everything that shapes `prepare` (the model's config and buffers, the coordinate map, the input fields), so a
new config builds its own store and never reads another's; a sample file that changed since its entry was
written is prepared again."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

import geoop
from geoop.models.field_operator import FieldOperator

INT32_MAX = 2**31 - 1


@functools.cache
def _code_hash() -> str:
    """A hash of geoop's own source files: structures prepared by other code are never read back (the version
    number alone does not change with every edit of a working tree)."""
    digest = hashlib.sha256()
    for path in sorted(Path(geoop.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def store_key(operator: FieldOperator) -> str:
    """16 hex digits naming what shapes `operator.prepare`: geoop's code, model config and buffers,
    normalization, fields."""
    buffers = {name: b.tolist() for name, b in operator.model.named_buffers()}
    described = {"geoop": geoop.__version__, "code": _code_hash(), "model": operator.model_config, "buffers": buffers,
                 "center": operator.normalizer.center.tolist(), "scale": float(operator.normalizer.scale),
                 "fields": operator.fields.to_dict()}
    return hashlib.sha256(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


class PreparedStore:
    """Prepared structures of samples by id, in `folder` (created on first write).

    Shapes: whatever the model's prepared dataclass holds; `put` and `get` round-trip it exactly (int64
    indices come back as int64)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, sample_id: int) -> Path:
        return self.folder / f"sample_{sample_id:06d}.safetensors"

    def get(self, sample_id: int, source: Path) -> Any | None:
        """The stored structure of `sample_id`, or None when there is none, or it was made from another
        version of the sample file `source`, or it cannot be read (it is then prepared again)."""
        path = self.path(sample_id)
        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="pt") as f:  # one read: header, then the tensors
                meta = json.loads(f.metadata()["geoop"])
                if meta["source"] != _stamp(source):
                    return None
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
            return _unflatten(meta["tree"], tensors)
        except (SafetensorError, OSError, KeyError, ValueError, TypeError, RuntimeError):
            return None

    def put(self, sample_id: int, source: Path, prepared: Any) -> None:
        """Write `prepared` of `sample_id` (made from the sample file `source`) atomically."""
        tensors: dict[str, _Stored] = {}
        tree = _flatten(prepared, "", tensors)
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(sample_id)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        meta = json.dumps({"source": _stamp(source), "tree": tree})
        save_file({k: v.tensor for k, v in tensors.items()}, tmp, metadata={"geoop": meta})
        tmp.replace(path)


def _stamp(source: Path) -> list:
    stat = Path(source).stat()
    return [stat.st_size, stat.st_mtime_ns]


@dataclasses.dataclass
class _Stored:
    tensor: torch.Tensor  # as written
    original: torch.Tensor  # the prepared structure's own tensor (to find it again in another field)
    int64: bool  # written as int32, read back as int64


def _flatten(value: Any, name: str, tensors: dict[str, _Stored]) -> Any:
    """A JSON description of `value`; its tensors go into `tensors` under dotted names."""
    if torch.is_tensor(value):
        original, value = value, value.detach().cpu()
        if value.is_sparse:
            value = value.coalesce()
            return {"sparse": list(value.shape), "indices": _flatten(value.indices(), f"{name}.i", tensors),
                    "values": _flatten(value.values(), f"{name}.v", tensors)}
        for stored, tensor in tensors.items():  # one tensor in two fields (queries that are the points)
            if tensor.original is original:
                return {"tensor": stored, "int64": tensor.int64}
        narrow = value.dtype == torch.int64 and (not value.numel() or int(value.abs().max()) <= INT32_MAX)
        tensors[name] = _Stored((value.int() if narrow else value).contiguous(), original, narrow)
        return {"tensor": name, "int64": narrow}
    if dataclasses.is_dataclass(value):
        cls = type(value)
        return {"dataclass": f"{cls.__module__}:{cls.__qualname__}",
                "fields": {f.name: _flatten(getattr(value, f.name), f"{name}.{f.name}".lstrip("."), tensors)
                           for f in dataclasses.fields(value)}}
    if isinstance(value, (list, tuple)):
        return {"list": [_flatten(v, f"{name}.{i}", tensors) for i, v in enumerate(value)],
                "tuple": isinstance(value, tuple)}
    if value is None or isinstance(value, (bool, int, float, str)):
        return {"value": value}
    raise TypeError(f"cannot store a {type(value).__name__} in a prepared structure")


def _unflatten(tree: dict, tensors: dict[str, torch.Tensor]) -> Any:
    if "tensor" in tree:
        t = tensors[tree["tensor"]]
        return t.long() if tree["int64"] else t
    if "sparse" in tree:
        return torch.sparse_coo_tensor(_unflatten(tree["indices"], tensors), _unflatten(tree["values"], tensors),
                                       tree["sparse"], is_coalesced=True, check_invariants=True)
    if "dataclass" in tree:
        cls = _dataclass(tree["dataclass"])
        return cls(**{k: _unflatten(v, tensors) for k, v in tree["fields"].items()})
    if "list" in tree:
        items = [_unflatten(v, tensors) for v in tree["list"]]
        return tuple(items) if tree["tuple"] else items
    return tree["value"]


def _dataclass(name: str) -> type:
    """The dataclass `module:qualname`, from a module that is already imported (nothing is imported or
    executed on behalf of a file)."""
    module, _, qualname = name.partition(":")
    cls = sys.modules.get(module)
    for part in qualname.split("."):
        cls = getattr(cls, part, None)
    if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
        raise ValueError(f"{name} is not a loaded dataclass")
    return cls
