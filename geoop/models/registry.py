"""Models by name, so a config file can swap one for another. Every registered model shares one interface:

    model.needs -> frozenset of SAMPLE_INPUTS                                        # what prepare takes
    prepared = model.prepare(pos (N, d), queries (M, d), **inputs)                  # once per geometry
    prepared = model.with_queries(prepared, queries (M', d), sdf_fn=...)             # same geometry, new queries
    batch = type(prepared).collate([prepared, ...])                                  # several geometries
    state = model.encode(f (N_total, C_in) or None, batch)                           # no query in it
    model.decode(state, batch) -> (M_total, C_out)                                   # at the queries
    model(f, batch) == model.decode(model.encode(f, batch), batch)                   # differentiable

`inputs` are the sample's data the model declares in `needs` (see `SAMPLE_INPUTS`). `encode` does everything
that does not depend on the queries (graphs into the latent grid and the FNO, the token transformer, message
passing), so `FieldOperator.predict` encodes a geometry once and decodes any number of query chunks. A model
without `encode`/`decode`/`with_queries` (one registered from outside) still works: it runs whole per chunk.

Models whose structure depends on the data (the K-D tree of KD-FNO, BENO's boundary channels) are fitted here,
and what was fitted is part of the returned config, so `model_from_config` rebuilds them exactly."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from geoop.decomposition.kdtree import KDTreeDecomposition
from geoop.errors import GeoopError
from geoop.models.attention_operators import GNOT, MINO
from geoop.models.beno import BENO, MeshGNN
from geoop.models.gino import GINO
from geoop.models.kdfno import KDFNO
from geoop.models.transolver import Transolver


SAMPLE_INPUTS = {
    "sdf": "sdf_fn: the signed distance at (K, d) numpy points in model coordinates (from the sample's geometry)",
    "mesh_edges": "mesh_edges (2, E): the edges of the sample's mesh cells",
    "weights": "weights (N,): quadrature weights (cell measure shares, summing to 1)",
    "boundary": "boundary (N,): boundary-node flags",
    "normals": "normals (N, d): outward unit normals at boundary nodes (0 inside)",
    "boundary_weights": "boundary_weights (N,): each node's share of the boundary measure (0 inside)",
    "cells": "cells (K, d + 1) or None: the simplices of the sample's volume mesh (None for a surface, a point "
             "cloud or a subsampled sample), which say where the domain is",
}


@dataclass(frozen=True)
class DataFacts:
    """What data-dependent models learn from the training set: its geometries' points `(N_i, d)` in model
    coordinates, which input channels are boundary data (values of masked fields and their extensions inward),
    boundary-condition types (their 0/1 masks) and derived from others (the extensions), and where spatial-
    vector inputs (d components, e.g. a free stream) start (see `geoop.data.features.InputLayout`)."""

    train_points: Sequence[np.ndarray] = ()
    boundary_channels: Sequence[int] = ()
    type_channels: Sequence[int] = ()
    derived_channels: Sequence[int] = ()
    vector_channels: Sequence[int] = ()


Builder = Callable[[int, int, int, DataFacts, dict[str, Any]], tuple[nn.Module, dict[str, Any]]]


def class_builder(cls: type[nn.Module]) -> Builder:
    """The builder of a model class that takes `(dim, in_channels, out_channels, **options)` and needs nothing
    from the data."""
    def build(dim: int, in_channels: int, out_channels: int, data: DataFacts,
              options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        return cls(dim, in_channels, out_channels, **options), options

    return build


def _with_roles(cls: type[nn.Module], roles: Sequence[str]) -> Builder:
    """A builder that fills the model's channel-role arguments (`roles`, fields of `DataFacts`) from the data."""
    def build(dim: int, in_channels: int, out_channels: int, data: DataFacts,
              options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        options = {**{r: list(getattr(data, r)) for r in roles}, **options}
        return cls(dim, in_channels, out_channels, **options), options

    return build


def _kdfno(dim: int, in_channels: int, out_channels: int, data: DataFacts,
           options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    options = dict(options)
    state = options.pop("tree", None)
    tree_options = {k: options.pop(k) for k in ("n_subdomains", "n_blocks", "min_points") if k in options}
    if state is None:
        if not data.train_points:
            raise GeoopError("KD-FNO fits its K-D tree on training points; none were given")
        points = list(data.train_points)
        tree = KDTreeDecomposition(**tree_options).fit(np.concatenate(points), n_samples=len(points),
                                                       sample_index=np.repeat(np.arange(len(points)),
                                                                              [len(p) for p in points]))
    else:
        tree = KDTreeDecomposition.from_state_dict(state)
    if tree.leaf_lower_.shape[1] != dim:
        raise GeoopError(f"the K-D tree is {tree.leaf_lower_.shape[1]}D but the model is {dim}D")
    return KDFNO(tree, in_channels, out_channels, **options), {**options, "tree": tree.state_dict()}


def _fno(dim: int, in_channels: int, out_channels: int, data: DataFacts,
         options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    """The single-grid FNO: KD-FNO with one leaf, i.e. the fields interpolated onto one uniform grid over the
    training box, an FNO, and multilinear interpolation back to the queries."""
    if options.get("n_subdomains", 1) != 1:
        raise GeoopError("the fno model has one grid", fix="use model.name=kdfno for a K-D tree of several grids")
    return _kdfno(dim, in_channels, out_channels, data, {**options, "n_subdomains": 1})


MODELS: dict[str, Builder] = {
    "gino": _with_roles(GINO, ("boundary_channels", "type_channels", "derived_channels")),
    "kdfno": _kdfno,
    "fno": _fno,
    "beno": _with_roles(BENO, ("boundary_channels", "type_channels")),
    "gnn": class_builder(MeshGNN),
    "mino": class_builder(MINO),
    "gnot": class_builder(GNOT),
    "transolver": _with_roles(Transolver, ("vector_channels",)),
}


def register(name: str, builder: Builder) -> None:
    """Add a model family under `name` (e.g. one written outside geoop): `builder(dim, in_channels,
    out_channels, data: DataFacts, options) -> (module, options)`, the module following the interface above.
    Checkpoints of such a model load where the same registration has run."""
    if name in MODELS:
        raise GeoopError(f"a model called {name!r} is already registered", fix="choose another name")
    MODELS[name] = builder


def build_model(name: str, dim: int, in_channels: int, out_channels: int, data: DataFacts | None = None,
                **options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A model by registry name and its complete config (JSON-serialisable; fitted parts included).

    `data`: what data-dependent models need to know about the training set. `options`: the model class's
    keyword arguments."""
    if name not in MODELS:
        raise GeoopError(f"unknown model {name!r}", fix=f"choose one of {sorted(MODELS)}")
    try:
        model, config = MODELS[name](dim, in_channels, out_channels, data or DataFacts(), options)
    except TypeError as e:
        raise GeoopError(f"bad options for model {name!r}: {e}",
                         fix="see the model's docstring for its arguments") from None
    return model, {"name": name, "dim": dim, "in_channels": in_channels, "out_channels": out_channels,
                   "options": config}


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild (untrained) the model `build_model` described by `config`."""
    model, _ = build_model(config["name"], config["dim"], config["in_channels"], config["out_channels"],
                           **config["options"])
    return model
