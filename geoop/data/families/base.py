"""What a dataset family declares: its fields, its options and how one sample is made."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from geoop.data.designs import DesignSpace
from geoop.geometry.geometry import Geometry
from geoop.metrics.forces import ForceSpec


@dataclass(frozen=True)
class FieldSpec:
    """A point field of a sample. `mask` names a boolean point field where the values are meaningful
    (e.g. Cp only on the body surface); None means everywhere."""

    components: int
    units: str
    description: str
    mask: str | None = None


@dataclass(frozen=True)
class Family:
    """A generator of samples: `make(rng, **options) -> Geometry` with the declared point fields and
    per-sample parameters in `global_data`."""

    name: str
    description: str
    dim: int
    inputs: dict[str, FieldSpec]
    targets: dict[str, FieldSpec]
    make: Callable[..., Geometry]
    options: dict[str, Any] = field(default_factory=dict)
    default_n: int = 200
    solver: str = "scikit-fem"
    splits: tuple[float, float, float] = (0.8, 0.1, 0.1)
    requires: tuple[str, ...] = ("gmsh", "skfem")  # Python modules the generator imports
    openfoam: bool = False  # runs OpenFOAM's programs
    forces: ForceSpec | None = None  # which fields give the force coefficients of a body
    parameters: tuple[str, ...] = ()  # the design parameters each sample draws (its values in the manifest)
    body: str | None = None  # the 0/1 point field of a body inside the domain (the rest of the edge is a cut)
    shapes: tuple[str, ...] = ()  # the named bodies its `--shapes` takes (beside closed surface files)
    #: the design parameters drawn apart from the sample, for callers that choose designs: `make` then takes
    #: `design=` (a drawn dict) and `inputs_only=True` (the geometry and input fields before the solver runs)
    designs: DesignSpace | None = None

    def sample(self, seed: int, index: int, **options: Any) -> Geometry:
        """Sample `index` of a dataset with base seed `seed` (independent of order and of other samples)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        return self.make(rng, **{**self.options, **options})
