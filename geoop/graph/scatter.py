"""Sums of edge values into their targets. torch's `index_add_` by default; torch-scatter's kernels when the
`fast` extra is installed (chosen once, logged once, and overridable with GEOOP_SCATTER=torch|torch_scatter)."""
from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def _pick_backend() -> str:
    wanted = os.environ.get("GEOOP_SCATTER", "auto")
    if wanted not in ("auto", "torch", "torch_scatter"):
        raise ValueError(f"GEOOP_SCATTER must be auto, torch or torch_scatter, not {wanted!r}")
    if wanted == "torch":
        return "torch"
    try:
        import torch_scatter  # noqa: F401
    except ImportError:
        if wanted == "torch_scatter":
            raise
        return "torch"
    return "torch_scatter"


BACKEND = _pick_backend()
log.info("scatter sums use %s", BACKEND)


def scatter_sum(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """`out[i] = sum_{e: index[e] = i} values[e]` for `values (E, C)`, `index (E,)` -> `(size, C)`."""
    if BACKEND == "torch_scatter":
        import torch_scatter

        return torch_scatter.scatter_add(values, index, dim=0, dim_size=size)
    out = values.new_zeros((size, *values.shape[1:]))
    return out.index_add_(0, index, values)
