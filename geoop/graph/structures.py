"""The models' per-geometry structures (graphs, grids, interpolation matrices) are dataclasses whose fields say
how several samples join into one batch. One `collate` and one `move` then serve every model:

    @dataclass
    class MyInputs(Structure):
        pos: torch.Tensor = rows()                    # (N, d): concatenated
        batch: torch.Tensor = sample_ids()            # (N,): offset by the samples before
        edges: torch.Tensor = index("pos", "grid")    # (2, E): row 0 offset by earlier pos rows, row 1 by grid
        to_queries: torch.Tensor = blocks()           # sparse (M, N): block-diagonal
        n_samples: int = total()                      # summed

Every structure has `n_samples`. A field whose value is None in any part is None in the batch. Offsets name
fields (a dotted path into a nested structure, or a property): their length, or their value when an int."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, TypeVar

import torch

T = TypeVar("T")
_JOIN = "join"


def rows(default: Any = dataclasses.MISSING) -> Any:
    """A field concatenated along its first axis."""
    return dataclasses.field(default=default, metadata={_JOIN: ("rows",)})


def sample_ids(default: Any = dataclasses.MISSING) -> Any:
    """Sample ids `(K,)`: concatenated, each part's offset by the samples of the parts before it."""
    return dataclasses.field(default=default, metadata={_JOIN: ("index", ("n_samples",))})


def index(*counts: str, default: Any = dataclasses.MISSING) -> Any:
    """Indices into other fields: `(K,)` offset by `counts[0]` of the parts before, or `(len(counts), K)` with
    row i offset by `counts[i]`, concatenated along the last axis."""
    return dataclasses.field(default=default, metadata={_JOIN: ("index", counts)})


def blocks(default: Any = dataclasses.MISSING) -> Any:
    """A sparse COO matrix `(M_i, N_i)` per part, joined block-diagonally."""
    return dataclasses.field(default=default, metadata={_JOIN: ("blocks",)})


def total(default: Any = dataclasses.MISSING) -> Any:
    """An int summed over the parts (counts of samples, of empty targets)."""
    return dataclasses.field(default=default, metadata={_JOIN: ("total",)})


def same(default: Any = dataclasses.MISSING) -> Any:
    """A setting every part must share (a grid resolution); batching parts that differ is an error."""
    return dataclasses.field(default=default, metadata={_JOIN: ("same",)})


def nested(default: Any = dataclasses.MISSING) -> Any:
    """A structure inside the structure, joined by its own fields' rules."""
    return dataclasses.field(default=default, metadata={_JOIN: ("nested",)})


class Structure:
    """Base of the per-geometry structures: `collate` and `to` from the fields' join rules."""

    @classmethod
    def collate(cls: type[T], parts: Sequence[T]) -> T:
        """One batch of `parts` (each of one or more samples)."""
        return collate(parts)

    def to(self: T, device: torch.device | str) -> T:
        return move(self, device)


def collate(parts: Sequence[T]) -> T:
    """One structure of the same dataclass as `parts`, joined by its fields' rules (see the module)."""
    first = parts[0]
    joined = {}
    for f in dataclasses.fields(first):
        values = [getattr(p, f.name) for p in parts]
        rule = f.metadata.get(_JOIN)
        if rule is None:
            raise TypeError(f"{type(first).__name__}.{f.name} has no join rule")
        if rule[0] == "total":
            joined[f.name] = sum(values)
        elif rule[0] == "same":
            if len(set(values)) != 1:
                raise ValueError(f"cannot batch {type(first).__name__}s of different {f.name} {sorted(set(values))}")
            joined[f.name] = values[0]
        elif all(v is None for v in values):
            joined[f.name] = None
        elif any(v is None for v in values):
            raise ValueError(f"cannot batch {type(first).__name__} parts that have {f.name} with ones that do not "
                             "(e.g. samples predicted at their own points with samples that have queries)")
        elif rule[0] == "rows":
            joined[f.name] = torch.cat(values)
        elif rule[0] == "nested":
            joined[f.name] = collate(values)
        elif rule[0] == "blocks":
            joined[f.name] = block_diagonal(values)
        else:
            joined[f.name] = _offset(values, parts, rule[1])
    return type(first)(**joined)


def _size(part: Any, path: str) -> int:
    value = part
    for name in path.split("."):
        value = getattr(value, name)
    return value if isinstance(value, int) else len(value)


def _offset(values: list[torch.Tensor], parts: Sequence[Any], counts: Sequence[str]) -> torch.Tensor:
    shifted, before = [], [0] * len(counts)
    for v, p in zip(values, parts, strict=True):
        shift = torch.tensor(before, dtype=v.dtype, device=v.device)
        shifted.append(v + shift[0] if v.ndim == 1 else v + shift[:, None])
        before = [b + _size(p, c) for b, c in zip(before, counts, strict=True)]
    return torch.cat(shifted, dim=-1)


def move(structure: T, device: torch.device | str) -> T:
    """A copy of `structure` with every tensor (also in nested structures) on `device`."""
    moved = {}
    for f in dataclasses.fields(structure):
        v = getattr(structure, f.name)
        moved[f.name] = v.to(device) if torch.is_tensor(v) else move(v, device) if dataclasses.is_dataclass(v) else v
    return type(structure)(**moved)


def block_diagonal(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sparse COO matrices `(M_i, N_i)` -> one block-diagonal `(sum M_i, sum N_i)` (coalesced: each block's
    entries are in row-major order, and the blocks follow one another down the diagonal, so the joined entries
    are too; no sort)."""
    n_rows = n_cols = 0
    indices, values = [], []
    for m in mats:
        m = m.coalesce()
        indices.append(m.indices() + torch.tensor([[n_rows], [n_cols]], device=m.device))
        values.append(m.values())
        n_rows, n_cols = n_rows + m.shape[0], n_cols + m.shape[1]
    return torch.sparse_coo_tensor(torch.cat(indices, 1), torch.cat(values), (n_rows, n_cols), is_coalesced=True,
                                   check_invariants=True)
