"""Models by name, so a config file can swap one for another. Every registered model shares one interface:

    prepared = model.prepare(pos (N, d), weights (N,), queries (M, d), sdf_fn)   # once per geometry
    batch = type(prepared).collate([prepared, ...])                              # several geometries
    model(f (N_total, C_in), batch) -> (M_total, C_out)                          # differentiable

Models whose structure depends on the data (the K-D tree of KD-FNO) are fitted on the training points here,
and their fitted state is part of the returned config, so `model_from_config` rebuilds them exactly."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from torch import nn

from geoop.decomposition.kdtree import KDTreeDecomposition
from geoop.errors import GeoopError
from geoop.models.gino import GINO
from geoop.models.kdfno import KDFNO


def _gino(dim: int, in_channels: int, out_channels: int, train_points: Sequence[np.ndarray],
          options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    return GINO(dim, in_channels, out_channels, **options), options


def _kdfno(dim: int, in_channels: int, out_channels: int, train_points: Sequence[np.ndarray],
           options: dict[str, Any]) -> tuple[nn.Module, dict[str, Any]]:
    options = dict(options)
    state = options.pop("tree", None)
    tree_options = {k: options.pop(k) for k in ("n_subdomains", "n_blocks", "min_points") if k in options}
    if state is None:
        if not train_points:
            raise GeoopError("KD-FNO fits its K-D tree on training points; none were given")
        tree = KDTreeDecomposition(**tree_options).fit(np.concatenate(list(train_points)),
                                                       n_samples=len(train_points))
    else:
        tree = KDTreeDecomposition.from_state_dict(state)
    if tree.leaf_lower_.shape[1] != dim:
        raise GeoopError(f"the K-D tree is {tree.leaf_lower_.shape[1]}D but the model is {dim}D")
    return KDFNO(tree, in_channels, out_channels, **options), {**options, "tree": tree.state_dict()}


Builder = Callable[[int, int, int, Sequence[np.ndarray], dict[str, Any]], tuple[nn.Module, dict[str, Any]]]
MODELS: dict[str, Builder] = {"gino": _gino, "kdfno": _kdfno}


def build_model(name: str, dim: int, in_channels: int, out_channels: int,
                train_points: Sequence[np.ndarray] = (), **options: Any) -> tuple[nn.Module, dict[str, Any]]:
    """A model by registry name and its complete config (JSON-serialisable; fitted parts included).

    `train_points`: the training geometries' points `(N_i, d)` in model coordinates (used by data-dependent
    models). `options`: the model class's keyword arguments."""
    if name not in MODELS:
        raise GeoopError(f"unknown model {name!r}", fix=f"choose one of {sorted(MODELS)}")
    try:
        model, config = MODELS[name](dim, in_channels, out_channels, train_points, options)
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
