"""Which design to simulate next (training while the solver runs, `geoop train --online --select ...`):

- "diversity": the candidate farthest from every design made or being made, distances in the family's unit
  design cube (`DesignSpace.coordinates`): argmax_c min_j |z_c - z_j|;
- "uncertainty": the candidate the latest model expects to predict worst: each candidate is meshed with its
  inputs but not solved (`make(..., inputs_only=True)`), and scored by the model's estimated relative L2 error
  summed over the target fields (`FieldOperator.estimated_errors`, from its learned per-point scale).

Random selection needs neither: the family draws the design itself from (seed, index)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from geoop.data.designs import DesignSpace


def farthest(space: DesignSpace, candidates: Sequence[Mapping[str, float]],
             made: Sequence[Mapping[str, float]]) -> int:
    """The position in `candidates` of the design farthest (in the unit design cube) from all of `made`; the
    first candidate when nothing is made yet."""
    if not made:
        return 0
    z, seen = space.coordinates(candidates), space.coordinates(made)
    nearest = np.sqrt(((z[:, None, :] - seen[None, :, :]) ** 2).sum(-1)).min(1)
    return int(np.argmax(nearest))


def most_uncertain(family_name: str, seed: int, index: int, options: dict, candidates: Sequence[dict[str, float]],
                   model: str) -> tuple[int, list[float]]:
    """(position of the candidate design the model at `model` expects to predict worst, every candidate's
    estimated error summed over the fields). Each candidate is made as sample `index` would be, inputs only."""
    import torch

    from geoop.data.families import get_family
    from geoop.training.run import load_model

    family, operator = get_family(family_name), load_model(model)
    scores = []
    for design in candidates:
        geometry = family.sample(seed, index, **{**options, "design": design, "inputs_only": True})
        with torch.no_grad():
            scores.append(float(sum(operator.estimated_errors(geometry).values())))
    return int(np.argmax(scores)), scores
