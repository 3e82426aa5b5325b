"""The contract every operator keeps, owned by one base class (in the spirit of PyG's `MessagePassing`: the base
holds the mechanics, a model fills documented hooks).

    class MyOperator(Operator):
        needs = frozenset({Need.WEIGHTS, Need.SDF})          # what prepare takes from a sample

        def prepare(self, pos, queries=None, inputs=NO_INPUTS) -> MyStructure: ...   # once per geometry
        def with_queries(self, prepared, queries, inputs=NO_INPUTS) -> MyStructure: ...  # new queries
        def encode(self, f, prepared) -> state: ...           # all that does not depend on the queries
        def decode(self, state, prepared) -> (M, C_out): ...  # at the prepared queries

`forward(f, prepared) = decode(encode(f, prepared), prepared)` is written here once. `prepare` is a pure
function of its arguments: what depends on the training data (GINO's radii, sized from the point spacing) is
set by `fit(facts)` before any `prepare`; a model used before it is fitted says so (`NotFittedError`). The
structures `prepare` returns are `geoop.graph.structures.Structure`s, so one `collate` batches any model's.

A model that averages its evaluation over a symmetry group (the mirrored problems of KD-FNO) does so by
default; the trainer's per-epoch validation asks for one pass explicitly, `with model.evaluation("single")`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from enum import Enum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from geoop.errors import GeoopError

if TYPE_CHECKING:
    from geoop.graph.structures import Structure
    from geoop.models.registry import DataFacts


class Need(str, Enum):
    """A per-sample input a model's `prepare` may take (see `SampleInputs`)."""

    SDF = "sdf"
    MESH_EDGES = "mesh_edges"
    WEIGHTS = "weights"
    BOUNDARY = "boundary"
    NORMALS = "normals"
    BOUNDARY_WEIGHTS = "boundary_weights"
    CELLS = "cells"


@dataclass(frozen=True)
class SampleInputs:
    """What one sample offers a model's `prepare`, in model coordinates; a model reads the ones in its `needs`.

    weights `(N,)`: quadrature weights (cell measure shares, summing to 1). boundary `(N,)`: boundary-node flags.
    normals `(N, d)`: outward unit normals at boundary nodes (0 inside). boundary_weights `(N,)`: each node's share
    of the boundary measure (0 inside). sdf_fn: the signed distance at `(K, d)` numpy points. mesh_edges
    `(2, E)`: the edges of the sample's mesh cells. cells `(K, d + 1)`: the simplices of a volume mesh (None for a
    surface, a cloud or a subsampled sample), which say where the domain is."""

    weights: torch.Tensor | None = None
    boundary: torch.Tensor | None = None
    normals: torch.Tensor | None = None
    boundary_weights: torch.Tensor | None = None
    sdf_fn: Callable[[np.ndarray], np.ndarray] | None = None
    mesh_edges: torch.Tensor | None = None
    cells: np.ndarray | None = None

    def only(self, needs: frozenset[Need]) -> SampleInputs:
        """The same inputs less those not in `needs` (so a model sees only what it declares)."""
        wanted = {FIELD_OF[n] for n in needs}
        return SampleInputs(**{f.name: getattr(self, f.name) if f.name in wanted else None for f in fields(self)})


#: no inputs: every model's default (every input has a default, or the model says which it needs)
NO_INPUTS = SampleInputs()

#: the SampleInputs field that carries each need
FIELD_OF = {Need.SDF: "sdf_fn", Need.MESH_EDGES: "mesh_edges", Need.WEIGHTS: "weights", Need.BOUNDARY: "boundary",
            Need.NORMALS: "normals", Need.BOUNDARY_WEIGHTS: "boundary_weights", Need.CELLS: "cells"}


class MissingInputError(GeoopError):
    """A model's `prepare` given less than it needs."""


Evaluation = Literal["mean", "single"]


class Operator(nn.Module, ABC):
    """Base of every registered model: `(N, C_in)` fields at a geometry's points -> `(M, C_out)` at its queries.

    Subclasses set `needs` (class level) and implement `prepare`, `with_queries`, `encode`, `decode`; those
    whose structure depends on the data override `fit`. `use_sdf` (an option of most models) drops `Need.SDF`
    from what the instance takes when False."""

    needs: ClassVar[frozenset[Need]] = frozenset()
    use_sdf: bool = True

    def __init__(self) -> None:
        super().__init__()
        self.symmetry_mean = True

    @property
    def takes(self) -> frozenset[Need]:
        """The inputs this instance's `prepare` reads: `needs`, less the signed distance where `use_sdf` is off."""
        return self.needs if self.use_sdf else self.needs - {Need.SDF}

    def fit(self, facts: DataFacts) -> Operator:
        """Set what depends on the training data (default: nothing); returns self."""
        return self

    def check_fitted(self) -> None:
        """Raise `NotFittedError` when the data-dependent state `fit` sets is missing (default: none to set)."""

    def require(self, inputs: SampleInputs, *needs: Need) -> None:
        """Raise `MissingInputError` naming each of `needs` that `inputs` lacks."""
        missing = [FIELD_OF[n] for n in needs if getattr(inputs, FIELD_OF[n]) is None]
        if missing:
            raise MissingInputError(f"{type(self).__name__}.prepare needs {', '.join(missing)} in its SampleInputs",
                                    fix="pass them (FieldOperator fills what the model's `needs` declares)"
                                        + (", or build the model with use_sdf=False" if "sdf_fn" in missing else ""))

    @abstractmethod
    def prepare(self, pos: torch.Tensor, queries: torch.Tensor | None = None,
                inputs: SampleInputs = NO_INPUTS) -> Structure:
        """The structures (graphs, grids, interpolation weights) of ONE geometry `pos (N, d)` at `queries (M, d)`
        (default: the points), in model coordinates; changes nothing on the model."""

    @abstractmethod
    def with_queries(self, prepared: Structure, queries: torch.Tensor,
                     inputs: SampleInputs = NO_INPUTS) -> Structure:
        """`prepared` of ONE geometry with the query side of new `queries (M', d)`; the input side is shared."""

    @abstractmethod
    def encode(self, f: torch.Tensor | None, prepared: Structure) -> Any:
        """The latent state of inputs `f (N_total, C_in)` (None: no input fields): everything that does not
        depend on the queries."""

    @abstractmethod
    def decode(self, state: Any, prepared: Structure) -> torch.Tensor:
        """`(M_total, C_out)` at the prepared queries from the `encode` state."""

    def forward(self, f: torch.Tensor | None, prepared: Structure) -> torch.Tensor:
        return self.decode(self.encode(f, prepared), prepared)

    @contextmanager
    def evaluation(self, mode: Evaluation) -> Iterator[None]:
        """Within the block, models that can average an evaluation over their symmetry group do so (`"mean"`,
        the default outside any block) or run one pass (`"single"`, for the trainer's per-epoch check)."""
        if mode not in ("mean", "single"):
            raise GeoopError(f"unknown evaluation mode {mode!r}", fix="use 'mean' or 'single'")
        before = self.symmetry_mean
        self.symmetry_mean = mode == "mean"
        try:
            yield
        finally:
            self.symmetry_mean = before

