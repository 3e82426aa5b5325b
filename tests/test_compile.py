"""`train.compile=true` traces each model once: batches of new point and edge counts reuse the graphs
(dynamic shapes), so an epoch of mixed sizes does not recompile. Counted with dynamo's own statistics on the
"eager" backend (the guards that decide recompilation are the same for every backend), for a graph model
(GINO, whose kernel integrals run eagerly) and an attention model."""
from __future__ import annotations

import pytest
import torch
from torch._dynamo.utils import counters

from geoop.models.base import SampleInputs
from geoop.models.gino import GINO
from geoop.models.transolver import Transolver

MODELS = {
    "gino": lambda: GINO(2, 1, 1, resolution=8, hidden=8, modes=4, n_layers=1, use_sdf=False, in_radius=0.3,
                         out_radius=0.3, in_gno_hidden=(8,),
                         out_gno_hidden=(8,), projection_hidden=8),
    "transolver": lambda: Transolver(2, 1, 1, hidden=16, layers=1, heads=2, slices=4, use_sdf=False),
}
SIZES = (90, 131, 177)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mixed_point_counts_do_not_recompile(name):
    torch.manual_seed(0)
    torch._dynamo.reset()
    counters.clear()
    model = MODELS[name]()
    compiled = torch.compile(model, dynamic=True, backend="eager")
    graphs = []
    for n in SIZES:
        pos = torch.rand(n, 2) * 2 - 1
        boundary = pos.abs().max(1).values > 0.8
        prepared = model.prepare(pos, torch.rand(n // 2, 2) * 2 - 1,
                                 SampleInputs(boundary=boundary, normals=torch.zeros(n, 2)))
        f = torch.rand(n, 1)
        compiled(f, prepared).square().mean().backward()
        graphs.append(counters["stats"]["unique_graphs"])
    assert graphs[0] > 0 and graphs[-1] == graphs[1], f"graphs traced after each batch: {graphs}"

