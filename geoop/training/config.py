"""Typed run configs: one frozen dataclass per section (`DataConfig`, `ModelConfig`, `TrainConfig`) inside a
`RunConfig`, built from defaults, a YAML file and `section.key=value` overrides. Every key is checked on load:
an unknown one is refused naming the nearest valid name, and each value is checked against the type its
dataclass field (or, for a model option, its model class's `__init__` parameter) declares.

    config = load_config("configs/fno_poisson2d.yaml", ["train.budget=300", "data.root=data/poisson2d"])
    config.train.budget      # 300.0
    config.model.options     # {"oversample": 2.0, "hidden": 32, ...}, as given (defaults: `resolved_options`)
    config.to_dict()         # the YAML-shaped dict written beside a run as config.yaml
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import math
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geoop.data.features import EXTENSION_REACH
from geoop.errors import GeoopError


#: the config sections that hold keys (`out` and `threads` are plain values)
SECTIONS = ("data", "model", "train", "online")


@dataclass(frozen=True)
class DataConfig:
    """Which dataset and which of its fields. `root`: the dataset folder (manifest.json); `inputs`/`targets`:
    field names (default: the manifest's); `subsample`: at most this many training points per sample;
    `extension`: how far (a fraction of the box) boundary data are carried inward as inputs (0: off);
    `lift` {target: input}: learn the target as that input plus a correction; `scale` {target: "input^k"}:
    learn it in units of an input's magnitude; `body`: the boundary the forces are integrated over ("auto":
    the dataset's); `potential_flow`/`viscosity`: the inviscid prior added as inputs (see docs/data.md)."""

    root: str | None = None
    inputs: list[str] | None = None
    targets: list[str] | None = None
    subsample: int | None = None
    extension: float | None = EXTENSION_REACH
    lift: dict[str, str] | None = None
    scale: dict[str, str] | None = None
    body: str | None = "auto"
    potential_flow: str | None = None
    viscosity: float | None = None


@dataclass(frozen=True)
class ModelConfig:
    """A registered model by `name` (see `geoop.models.registry.MODELS`) and the keyword options of its class;
    options not given take the class's defaults (`resolved_options` lists them all)."""

    name: str = "gino"
    options: dict[str, Any] = field(default_factory=dict)

    def resolved_options(self) -> dict[str, Any]:
        """Every option of the model with its value: the given ones, else the class default (as plain YAML
        values: tuples become lists)."""
        from geoop.models.registry import model_parameters

        defaults = {k: p.default for k, p in (model_parameters(self.name) or {}).items()
                    if p.default is not inspect.Parameter.empty}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in {**defaults, **self.options}.items()}

    def to_dict(self, defaults: bool = False) -> dict[str, Any]:
        """{"name", **options}; `defaults`: every option, not just the given ones."""
        return {"name": self.name, **(self.resolved_options() if defaults else self.options)}


@dataclass(frozen=True)
class TrainConfig:
    """How to train. `epochs`: passes over the training set (default 50, or as many as fit a `budget`);
    `budget`: seconds of training, on the `clock` "cpu" (CPU-seconds of the training process, all its threads)
    or "wall"; the budget is the stopping rule, and the learning-rate schedule is sized to it (the first epoch
    warms up and measures the seconds per step, then the plan is fixed, and refit to the measured speed at each
    epoch's end with the rate kept continuous; a resumed run keeps it). With both,
    whichever ends first. `max_points` packs batches by point count (up to `batch_size` samples each);
    `schedule`: "onecycle", "cosine" or "constant" (stepped per batch); `patience`: epochs without a better
    validation error before stopping early (None: never); `loss`: "rel_l2" (relative L2 per sample and field,
    quadrature-weighted) or "huber" (the same with residuals beyond `huber_delta` times the sample's RMS
    counted linearly: robust to spikes such as suction peaks of Cp); `amp`: bf16 autocast on CUDA; `compile`:
    `torch.compile` the model; `device`: "auto" (CUDA when available), "cpu", "cuda", ...
    `uncertainty`: "variance" trains a variance head (a log-variance per target channel beside the prediction,
    by a Gaussian likelihood of the residual weighted `uncertainty_weight` against the relative L2, the
    prediction itself held fixed in it) so that error bands are narrow where the model is sure; "residual"
    fits a small network to the trained model's residuals on the training split instead (the model untouched);
    "constant" calibrates bands of one width per channel. Either way the bands are calibrated on the validation split
    after training (see docs/trust.md).
    `cache`: where each sample's prepared structures (graphs, grids, interpolation weights) are kept between
    epochs: "disk" (a store beside the dataset, see `PreparedStore`: memory stays flat as the dataset grows) or
    "memory" (all of them in RAM). `shards`: how the training set is dealt for data parallelism (default: one
    shard per process; batch_size and max_points are per shard); fix it to replay a run on another number of
    processes. `dist_timeout`: seconds a collective may wait for a lost rank before the job fails."""

    epochs: int | None = None
    budget: float | None = None
    clock: typing.Literal["cpu", "wall"] = "cpu"
    batch_size: int = 4
    max_points: int | None = None
    lr: float = 1e-3
    weight_decay: float = 1e-4
    schedule: typing.Literal["onecycle", "cosine", "constant"] = "onecycle"
    grad_clip: float | None = 1.0
    loss: typing.Literal["rel_l2", "huber"] = "rel_l2"
    huber_delta: float = 1.0
    seed: int = 0
    patience: int | None = None
    amp: bool = True
    compile: bool = False
    cache: typing.Literal["disk", "memory"] = "disk"
    device: str = "auto"
    progress: bool = True
    shards: int | None = None
    dist_timeout: float = 300.0
    uncertainty: typing.Literal["constant", "variance", "residual"] = "constant"
    uncertainty_weight: float = 0.1

    #: settings that shape the run's trajectory: a resumed run must have the same ones
    PLAN_KEYS: typing.ClassVar[tuple[str, ...]] = (
        "epochs", "budget", "clock", "batch_size", "max_points", "lr", "weight_decay", "schedule", "grad_clip",
        "loss", "huber_delta", "seed", "shards", "uncertainty", "uncertainty_weight")

    def __post_init__(self) -> None:
        checked = checked_fields(type(self), dataclasses.asdict(self), "train")
        for name, value in checked.items():
            object.__setattr__(self, name, value)
        if self.budget is not None and self.budget <= 0:
            raise GeoopError(f"train.budget must be positive seconds, got {self.budget}")

    @property
    def max_epochs(self) -> int | float:
        """The epoch limit: `epochs`, else 50 without a budget, else none."""
        if self.epochs is not None:
            return int(self.epochs)
        return math.inf if self.budget is not None else 50


@dataclass(frozen=True)
class OnlineConfig:
    """Training while the solver runs (`geoop train --online FAMILY`, see docs/online.md): `family` makes the
    samples (with its `options`, as `geoop data make --set` takes them, and seed `seed`) in `workers` solver
    processes into the dataset folder `data.root`, which keeps every sample. The first `val` samples (random
    designs) are made first and fixed as the validation split; training starts once `min_samples` training
    samples have come, drawing every batch from a buffer of at most `buffer_size` samples ("fifo": the newest;
    "reservoir": a uniform sample of all so far), so it never waits for the solver. `select` chooses each next
    design among `candidates` random ones: "random" (the family's own draw), "diversity" (the candidate farthest
    from every design made or being made), "uncertainty" (the one the latest model expects to predict worst,
    by its variance head: needs `train.uncertainty=variance`). `samples`: stop simulating after this many
    training samples (None: until the budget ends); `timeout`: seconds a sample may take; `validate_every`:
    wall seconds between validation passes (each writes the checkpoints). `family: command` runs the user's
    solver instead (see `geoop.data.families.command`): `command`, a shell command template with `{out}` (where
    the result goes) and `{name}` for each design parameter of `parameters` {name: [low, high]}; the result
    (the file or folder `result` under `{out}`) read as `geoop data import` would with `read` (the keys of
    `ReadOptions`), the fields `data.inputs` and `data.targets` kept, the parameters as constant inputs."""

    family: str | None = None
    command: str | None = None
    parameters: dict[str, list[float]] = field(default_factory=dict)
    read: dict[str, Any] = field(default_factory=dict)
    result: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    workers: int = 1
    val: int = 10
    min_samples: int = 8
    buffer_size: int = 256
    buffer: typing.Literal["fifo", "reservoir"] = "fifo"
    select: typing.Literal["random", "diversity", "uncertainty"] = "random"
    candidates: int = 4
    samples: int | None = None
    timeout: float = 600.0
    validate_every: float = 60.0


@dataclass(frozen=True)
class RunConfig:
    """A whole training run: the sections above, the run folder `out` and torch's thread count (None: leave);
    `online.family` set: the run trains while that family's solver makes the data (see `OnlineConfig`)."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    online: OnlineConfig = field(default_factory=OnlineConfig)
    out: str = "runs/run"
    threads: int | None = None

    def to_dict(self, defaults: bool = False) -> dict[str, Any]:
        """The YAML shape (what `load_config` reads back to an equal config); `defaults`: with every model
        option, not just the given ones."""
        return {"data": dataclasses.asdict(self.data), "model": self.model.to_dict(defaults),
                "train": dataclasses.asdict(self.train), "online": dataclasses.asdict(self.online), "out": self.out,
                "threads": self.threads}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], path: str | Path | None = None) -> RunConfig:
        """Check every section and key of `raw` (a YAML-shaped dict) and build the config."""
        unknown_key("", raw, [f.name for f in dataclasses.fields(cls)], path)
        for name in SECTIONS:
            if not isinstance(raw.get(name) or {}, Mapping):
                raise GeoopError(f"config section {name!r} must be a mapping of keys to values", path=path)
        sections = {name: dict(raw.get(name) or {}) for name in SECTIONS}
        model = dict(sections["model"])
        name = str(model.pop("name", ModelConfig.name))
        options = checked_model_options(name, model, path)
        top = checked_fields(cls, {k: raw[k] for k in ("out", "threads") if k in raw}, "", path)
        return cls(data=DataConfig(**checked_fields(DataConfig, sections["data"], "data", path)),
                   model=ModelConfig(name, options),
                   train=TrainConfig(**checked_fields(TrainConfig, sections["train"], "train", path)),
                   online=OnlineConfig(**checked_fields(OnlineConfig, sections["online"], "online", path)), **top)


def parse_value(text: str) -> Any:
    """A command-line value as YAML, with numbers like `3e-3` (a string to YAML 1.1) read as floats."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


#: the configs shipped with geoop (the repository's configs/ links here)
SHIPPED = Path(__file__).resolve().parents[1] / "configs"


def shipped_configs() -> list[str]:
    """Names of the configs shipped with geoop (`fno_poisson2d`, ...), usable wherever a config path is."""
    return sorted(p.stem for p in SHIPPED.glob("*.yaml"))


def config_path(path: str | Path) -> Path:
    """`path` if it is a file, else the shipped config of that name (`fno_poisson2d` or
    `configs/fno_poisson2d.yaml` from any folder); a typed error listing the shipped ones otherwise."""
    path = Path(path)
    if path.is_file():
        return path
    shipped = SHIPPED / f"{path.stem}.yaml"
    if path.suffix in ("", ".yaml") and path.parent.name in ("", "configs") and shipped.is_file():
        return shipped
    raise GeoopError("no such config file", path=path,
                     fix=f"give a YAML file, or one of the shipped configs by name: {', '.join(shipped_configs())}")


def load_config(path: str | Path | None = None, overrides: Sequence[str] = (), need_data: bool = True
                ) -> RunConfig:
    """The run config: defaults, then the YAML file (or a shipped config by name, see `config_path`), then
    `section.key=value` overrides (values parsed as YAML). Unknown keys are refused naming the nearest valid
    one, values of the wrong type naming the expected one; `need_data`: refuse a config naming no dataset."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = config_path(path)
        raw = yaml.safe_load(path.read_text()) or {}
        if not isinstance(raw, dict):
            raise GeoopError("a config file is a mapping of sections", path=path, fix="see configs/ for examples")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep:
            raise GeoopError(f"override {item!r} is not key=value", fix="e.g. --set train.epochs=20")
        *parents, leaf = key.strip().split(".")
        node = raw
        for depth, p in enumerate(parents):
            if depth == 0 and p not in SECTIONS:
                near = difflib.get_close_matches(p, SECTIONS, n=1)
                raise GeoopError(f"override {item!r}: {p!r} is not a config section",
                                 fix=(f"did you mean {near[0]}? " if near else "") + f"sections are {SECTIONS}")
            if not isinstance(node.get(p), dict):
                if depth and p in node:
                    raise GeoopError(f"override {item!r}: {p!r} holds a value, not keys", path=path)
                node[p] = {}
            node = node[p]
        node[leaf] = parse_value(text)
    config = RunConfig.from_dict(raw, path)
    if need_data and not config.data.root:
        raise GeoopError("the config names no dataset", fix="set data.root (e.g. --set data.root=out/data)")
    return config


def unknown_key(section: str, given: Mapping[str, Any], known: Sequence[str],
                path: str | Path | None = None) -> None:
    """Refuse keys of a config section that mean nothing there, naming the nearest valid one."""
    prefix = f"{section}." if section else ""
    for key in given:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {prefix}{near[0]}? " if near else ""
            raise GeoopError(f"unknown config key {prefix}{key}", path=path,
                             fix=f"{hint}{section or 'a config'} takes {', '.join(sorted(known))}")


def checked_fields(cls: type, given: Mapping[str, Any], section: str,
                   path: str | Path | None = None) -> dict[str, Any]:
    """`given` with keys checked against the dataclass `cls`'s fields and values against their types."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown_key(section, given, names, path)
    hints = typing.get_type_hints(cls)
    prefix = f"{section}." if section else ""
    return {k: checked_value(f"{prefix}{k}", v, hints[k], path) for k, v in given.items()}


def checked_model_options(name: str, options: Mapping[str, Any], path: str | Path | None = None
                          ) -> dict[str, Any]:
    """A model's options checked against its class's `__init__` parameters (names and annotated types)."""
    from geoop.models.registry import MODELS, model_parameters

    if name not in MODELS:
        near = difflib.get_close_matches(name, list(MODELS), n=1)
        raise GeoopError(f"unknown model {name!r}", path=path,
                         fix=(f"did you mean {near[0]}? " if near else "") + f"choose one of {sorted(MODELS)}")
    parameters = model_parameters(name)
    if parameters is None:  # a registered builder that does not say what it takes: its own check applies
        return dict(options)
    unknown_key("model", options, list(parameters), path)
    return {k: checked_value(f"model.{k}", v, parameters[k].annotation, path) for k, v in options.items()}


def _describe(hint: Any) -> str:
    """`int`, `Sequence[str]`, `Literal['cpu', 'wall']`: a type as a user reads it."""
    if typing.get_origin(hint) is None and hasattr(hint, "__name__"):
        return hint.__name__
    return str(hint).replace("typing.", "").replace("collections.abc.", "")


def checked_value(key: str, value: Any, hint: Any, path: str | Path | None = None) -> Any:
    """`value` if it has the type `hint` declares (ints pass as floats, numeric strings such as YAML's `1e-3`
    become floats); otherwise a `GeoopError` naming the key, the value and the expected type. Types this
    checker does not know (classes, callables) pass unchecked."""
    ok, converted = _conforms(value, hint)
    if not ok:
        raise GeoopError(f"config key {key} = {value!r} is not of type {_describe(hint)}", path=path,
                         fix=f"give {key} a value of type {_describe(hint)}")
    return converted


def _conforms(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether `value` matches `hint`, the value converted to it)."""
    if hint is Any or hint is inspect.Parameter.empty or isinstance(hint, (str, typing.TypeVar)):
        return True, value
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is None or hint is type(None):
        return value is None, value
    if origin is typing.Union or origin is types.UnionType:
        for arg in sorted(args, key=lambda a: a is float):  # exact types before the float coercion
            ok, converted = _conforms(value, arg)
            if ok:
                return True, converted
        return False, value
    if origin is typing.Literal:
        return value in args, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        if isinstance(value, str):
            try:
                return True, float(value)
            except ValueError:
                return False, value
        return False, value
    if hint is str:
        return isinstance(value, str), value
    container = origin or hint
    if container in (list, tuple, Sequence):
        if not isinstance(value, (list, tuple)):
            return False, value
        if not args:
            return True, list(value)
        item_hints = args[:-1] if (container is tuple and len(args) == 2 and args[1] is Ellipsis) else args
        if container is tuple and args[-1] is not Ellipsis:
            if len(args) != len(value):
                return False, value
            pairs = [_conforms(v, a) for v, a in zip(value, args, strict=True)]
        else:
            pairs = [_conforms(v, item_hints[0]) for v in value]
        return all(ok for ok, _ in pairs), [c for _, c in pairs]
    if container in (dict, Mapping):
        if not isinstance(value, Mapping):
            return False, value
        if not args:
            return True, dict(value)
        keys = [_conforms(k, args[0]) for k in value]
        values = [_conforms(v, args[1]) for v in value.values()]
        ok = all(k for k, _ in keys) and all(v for v, _ in values)
        return ok, {k: v for (_, k), (_, v) in zip(keys, values, strict=True)}
    return True, value
