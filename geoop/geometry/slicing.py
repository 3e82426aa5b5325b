"""A plane through a tetrahedral mesh: the exact section of every cell it cuts, with node values carried onto
it linearly (what a field looks like on a cut plane, as ParaView's Slice filter draws it)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the six edges of a tetrahedron, as pairs of its corners
_EDGES = np.array([[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]])


@dataclass(frozen=True)
class Section:
    """The cut of a mesh by the plane `x[axis] = offset`: `points (P, 2)` in the plane's two other coordinates
    (in increasing order of axis), `triangles (T, 3)` over them, `values (P, ...)` the node fields there, and
    `axes` the two coordinates kept."""

    points: np.ndarray
    triangles: np.ndarray
    values: np.ndarray
    axes: tuple[int, int]


def slice_tetrahedra(points: np.ndarray, tets: np.ndarray, values: np.ndarray, axis: int, offset: float
                     ) -> Section:
    """The section of the tetrahedra `tets (C, 4)` over `points (N, 3)` by the plane `x[axis] = offset`, with
    `values (N, ...)` interpolated linearly along the cut edges.

    With s = x[axis] - offset at the corners, an edge (a, b) with s_a and s_b of opposite sign is cut at
    t = s_a / (s_a - s_b), where the value is (1 - t) v_a + t v_b. A tetrahedron with one corner on one side
    is cut in a triangle, with two on each side in a quadrilateral (two triangles); corners exactly on the
    plane count as above it."""
    side = points[:, axis] - offset
    above = side[tets] >= 0  # (C, 4)
    count = above.sum(1)
    cut = (count > 0) & (count < 4)
    tets, above, count = tets[cut], above[cut], count[cut]
    a, b = tets[:, _EDGES[:, 0]], tets[:, _EDGES[:, 1]]  # (C, 6) edge ends
    crossing = above[:, _EDGES[:, 0]] != above[:, _EDGES[:, 1]]
    cell, edge = np.nonzero(crossing)  # 3 or 4 crossing edges per cell, in edge order
    ea, eb = a[cell, edge], b[cell, edge]
    t = side[ea] / (side[ea] - side[eb])
    keep = [i for i in range(3) if i != axis]
    where = points[ea][:, keep] + t[:, None] * (points[eb][:, keep] - points[ea][:, keep])
    shape = (-1,) + (1,) * (values.ndim - 1)
    value = values[ea] + t.reshape(shape) * (values[eb] - values[ea])
    first = np.concatenate([[0], np.cumsum(crossing.sum(1))[:-1]])  # each cell's first crossing edge
    single = count != 2
    # two corners on each side: taken in the order 0, 1, 3, 2 of their list (in `_EDGES` order), the four
    # crossing edges go round the quadrilateral (each shares a corner with the next)
    quad = first[~single][:, None] + np.array([0, 1, 3, 2])
    triangles = np.concatenate([first[single][:, None] + np.arange(3), quad[:, [0, 1, 2]], quad[:, [0, 2, 3]]])
    return Section(where, triangles, value, (keep[0], keep[1]))
