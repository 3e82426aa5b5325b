"""Models by name, so a config file can swap one for another. Every registered model subclasses
`geoop.models.base.Operator` and keeps its contract (see there and docs/architecture.md):

    model.needs -> frozenset of Need                                                 # what prepare reads
    prepared = model.prepare(pos (N, d), queries (M, d), SampleInputs(...))          # once per geometry
    prepared = model.with_queries(prepared, queries (M', d), inputs)                 # same geometry, new queries
    batch = type(prepared).collate([prepared, ...])                                  # several geometries
    state = model.encode(f (N_total, C_in) or None, batch)                           # no query in it
    model.decode(state, batch) -> (M_total, C_out)                                   # at the queries
    model(f, batch) == model.decode(model.encode(f, batch), batch)                   # differentiable

`encode` does everything that does not depend on the queries (graphs into the latent grid and the FNO, the token
transformer, message passing), so `FieldOperator.predict` encodes a geometry once and decodes any number of
query chunks.

Models whose structure depends on the data (the K-D tree of KD-FNO, BENO's boundary channels, GINO's radii) are
fitted here from `DataFacts`, and what was fitted is part of the returned config or the weights, so
`model_from_config` rebuilds them exactly."""
from __future__ import annotations

from collections.abc import Callable, Sequence
import dataclasses
import inspect
import typing
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import nn

from geoop.decomposition.kdtree import KDTreeDecomposition
from geoop.errors import GeoopError
from geoop.models.attention_operators import GNOT, MINO
from geoop.models.base import Operator
from geoop.models.beno import BENO, MeshGNN
from geoop.models.gino import GINO
from geoop.models.kdfno import KDFNO
from geoop.models.transolver import Transolver


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


def check_options(cls: type, options: dict[str, Any], skip: int = 4) -> None:
    """Refuse `options` that `cls.__init__` does not take (its parameters after the first `skip`, self
    included), naming the ones it does."""
    accepted = list(inspect.signature(cls.__init__).parameters)[skip:]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise GeoopError(f"{cls.__name__} takes no option {', '.join(map(repr, unknown))}",
                         fix=f"its options are {', '.join(accepted)}")


def class_builder(cls: type[Operator]) -> Builder:
    """The builder of a model class that takes `(dim, in_channels, out_channels, **options)` and needs nothing
    from the data."""
    def build(dim: int, in_channels: int, out_channels: int, data: DataFacts,
              options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        check_options(cls, options)
        return cls(dim, in_channels, out_channels, **options), options

    return build


def _with_roles(cls: type[nn.Module], roles: Sequence[str]) -> Builder:
    """A builder that fills the model's channel-role arguments (`roles`, fields of `DataFacts`) from the data."""
    def build(dim: int, in_channels: int, out_channels: int, data: DataFacts,
              options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
        options = {**{r: list(getattr(data, r)) for r in roles}, **options}
        check_options(cls, options)
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
    check_options(KDFNO, options)
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


#: where each model's config options come from: classes and how many leading `__init__` parameters (self and
#: what the builder fills: dim, channels, the tree) are not options
OPTIONS_FROM: dict[str, tuple[tuple[type, int], ...]] = {
    "gino": ((GINO, 4),), "kdfno": ((KDTreeDecomposition, 1), (KDFNO, 4)),
    "fno": ((KDTreeDecomposition, 1), (KDFNO, 4)), "beno": ((BENO, 4),), "gnn": ((MeshGNN, 4),),
    "mino": ((MINO, 4),), "gnot": ((GNOT, 4),), "transolver": ((Transolver, 4),),
}


def model_parameters(name: str) -> dict[str, inspect.Parameter] | None:
    """The options model `name` takes in a config, as `inspect.Parameter`s with their annotations resolved to
    types (where they resolve) and their defaults; None for a registered model that does not say. Parameters
    the builder fills from the data (fields of `DataFacts`, e.g. `boundary_channels`) are not options."""
    if name not in OPTIONS_FROM:
        return None
    filled = {f.name for f in dataclasses.fields(DataFacts)}
    out: dict[str, inspect.Parameter] = {}
    for cls, skip in OPTIONS_FROM[name]:
        try:
            hints = typing.get_type_hints(cls.__init__)
        except (NameError, TypeError):  # annotations naming what only a type checker imports: left unchecked
            hints = {}
        for p in list(inspect.signature(cls.__init__).parameters.values())[skip:]:
            if p.name not in filled:
                out[p.name] = p.replace(annotation=hints.get(p.name, inspect.Parameter.empty))
    return out


#: options of a model of each family small enough for a test or a smoke run (a few thousand parameters)
TINY: dict[str, dict[str, Any]] = {
    "gino": {"resolution": 8, "hidden": 8, "modes": 3, "n_layers": 1, "in_gno_hidden": [8],
             "out_gno_hidden": [8], "projection_hidden": 8},
    "kdfno": {"n_subdomains": 2, "hidden": 8, "modes": 3, "n_layers": 1, "global_resolution": 6},
    "fno": {"hidden": 8, "modes": 3, "n_layers": 1},
    "beno": {"hidden": 8, "layers": 1, "boundary_layers": 1},
    "gnn": {"hidden": 8, "layers": 1},
    "mino": {"tokens_per_axis": 4, "hidden": 8, "layers": 1, "decoder_layers": 1, "gno_hidden": [8]},
    "gnot": {"hidden": 8, "layers": 1, "experts": 2},
    "transolver": {"hidden": 8, "layers": 1, "heads": 2, "slices": 4},
}


def register(name: str, builder: Builder, tiny: dict[str, Any] | None = None,
             options_from: type | None = None) -> None:
    """Add a model family under `name` (e.g. one written outside geoop): `builder(dim, in_channels,
    out_channels, data: DataFacts, options) -> (module, options)`, the module an `Operator` subclass. `tiny`: the
    options of a small one, for the contract tests (default: the builder's defaults). `options_from`: the class
    whose `__init__(self, dim, in_channels, out_channels, **options)` defines the config options, so configs
    are checked on load (None: the builder checks them when it runs). Checkpoints of such a model load where the
    same registration has run."""
    if name in MODELS:
        raise GeoopError(f"a model called {name!r} is already registered", fix="choose another name")
    MODELS[name] = builder
    TINY[name] = dict(tiny or {})
    if options_from is not None:
        OPTIONS_FROM[name] = ((options_from, 4),)


def unregister(name: str) -> None:
    """Remove a model `register` added (a test's toy model)."""
    MODELS.pop(name, None)
    TINY.pop(name, None)
    OPTIONS_FROM.pop(name, None)


def build_model(name: str, dim: int, in_channels: int, out_channels: int, data: DataFacts | None = None,
                **options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A model by registry name and its complete config (JSON-serialisable; fitted parts included).

    `data`: what data-dependent models need to know about the training set. `options`: the model class's
    keyword arguments."""
    if name not in MODELS:
        raise GeoopError(f"unknown model {name!r}", fix=f"choose one of {sorted(MODELS)}")
    model, config = MODELS[name](dim, in_channels, out_channels, data or DataFacts(), options)
    if not isinstance(model, Operator):
        raise GeoopError(f"model {name!r} is a {type(model).__name__}, not a geoop.models.base.Operator",
                         fix="subclass Operator (see docs/architecture.md, the model contract)")
    model.fit(data or DataFacts())
    return model, {"name": name, "dim": dim, "in_channels": in_channels, "out_channels": out_channels,
                   "options": config}


def model_from_config(config: dict[str, Any]) -> nn.Module:
    """Rebuild (untrained) the model `build_model` described by `config`."""
    model, _ = build_model(config["name"], config["dim"], config["in_channels"], config["out_channels"],
                           **config["options"])
    return model
