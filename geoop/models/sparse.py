"""Sparse matrices of several samples joined into one batch."""
from __future__ import annotations

from collections.abc import Sequence

import torch


def block_diagonal(mats: Sequence[torch.Tensor]) -> torch.Tensor:
    """Sparse COO matrices `(M_i, N_i)` -> one block-diagonal `(sum M_i, sum N_i)` (coalesced)."""
    rows = cols = 0
    index, values = [], []
    for m in mats:
        m = m.coalesce()
        index.append(m.indices() + torch.tensor([[rows], [cols]], device=m.device))
        values.append(m.values())
        rows, cols = rows + m.shape[0], cols + m.shape[1]
    return torch.sparse_coo_tensor(torch.cat(index, 1), torch.cat(values), (rows, cols),
                                   check_invariants=True).coalesce()
