"""Flattening of vector fields into scalar columns (for PLY and CSV) and back: `v (N, 3)` <-> `v__0, v__1,
v__2`."""
from __future__ import annotations

import re

import numpy as np

_COLUMN = re.compile(r"^(.+)__(\d+)$")


def split_columns(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`(N, k)` fields -> k scalar columns `name__i`; scalar fields unchanged. Higher ranks are flattened."""
    out = {}
    for name, value in fields.items():
        if value.ndim == 1:
            out[name] = value
        else:
            flat = value.reshape(len(value), -1)
            out.update({f"{name}__{i}": flat[:, i] for i in range(flat.shape[1])})
    return out


def join_columns(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of `split_columns`: consecutive `name__0..k-1` become one `(N, k)` field."""
    groups: dict[str, dict[int, np.ndarray]] = {}
    out: dict[str, np.ndarray] = {}
    for name, value in columns.items():
        m = _COLUMN.match(name)
        if m:
            groups.setdefault(m.group(1), {})[int(m.group(2))] = value
        else:
            out[name] = value
    for base, parts in groups.items():
        if sorted(parts) == list(range(len(parts))):
            out[base] = np.stack([parts[i] for i in range(len(parts))], axis=1)
        else:
            out.update({f"{base}__{i}": v for i, v in parts.items()})
    return out
