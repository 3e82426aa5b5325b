"""`Fields`: the contract between a dataset and a trained operator, i.e. which fields go in and come out and
how they were turned into channels. A checkpoint stores it (`to_dict`), so prediction rebuilds the inputs of a
new geometry exactly as training did."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from geoop.data.features import InputLayout
from geoop.errors import GeoopError


@dataclass(frozen=True)
class Fields:
    """The fields of a run.

    `inputs`, `targets`: field names, in channel order. `specs`: {name: the manifest's spec} (`components`,
    `units`, `mask`: the boundary flag a boundary-data field lives on). `extension`: how far masked inputs
    are carried inward (see `InputLayout`). `lift` {target: input}: targets predicted as that input plus the
    model's output (see `lift_channels`); `scale` {target: "input" or "input^k"}: targets learned divided by
    the input's magnitude to the power k (see `scale_channels`). `distance`: the kind of distance function of
    the training geometries ("signed", "unsigned", "points"; see `geoop.geometry.sdf.distance_kind`).
    `forces`: a `ForceSpec` as a dict, when the run integrates force coefficients. `body`: the 0/1 point field
    of a body inside the domain (whose nodes alone are boundary). `potential_flow`: the free-stream input
    whose inviscid flow around the body is added to the inputs; `viscosity`: with it, the flat-plate skin
    friction too (see `geoop.data.potential_flow.potential_flow_fields`). `read`: how the training files were
    read on import (`geoop.data.read_options.ReadOptions` as a dict: patches, cells as points, Cp, ...), so
    that a user's file is read alike for prediction; None for data read as it is."""

    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    specs: Mapping[str, Mapping[str, Any]]
    extension: float = 0.0
    lift: Mapping[str, str] = field(default_factory=dict)
    scale: Mapping[str, str] = field(default_factory=dict)
    distance: str | None = None
    forces: Mapping[str, Any] | None = None
    body: str | None = None
    potential_flow: str | None = None
    viscosity: float | None = None
    read: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "lift", dict(self.lift or {}))
        object.__setattr__(self, "scale", dict(self.scale or {}))
        object.__setattr__(self, "extension", float(self.extension or 0))
        missing = [n for n in self.inputs + self.targets if n not in self.specs]
        if missing:
            raise GeoopError(f"no field spec for {missing}", fix="every input and target needs its spec")

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Fields:
        """From `to_dict`'s shape; keys that older checkpoints lack take their defaults."""
        known = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw}
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (lists for the name tuples), as checkpoints store it."""
        out = asdict(self)
        out["inputs"], out["targets"] = list(self.inputs), list(self.targets)
        out["specs"] = {k: dict(v) for k, v in self.specs.items()}
        return out

    @property
    def layout(self) -> InputLayout:
        """The input channels (see `InputLayout`)."""
        return InputLayout(self.inputs, self.specs, self.extension)

    @property
    def target_slices(self) -> dict[str, slice]:
        """Output channels of each target field."""
        out, start = {}, 0
        for name in self.targets:
            c = int(self.specs[name]["components"])
            out[name] = slice(start, start + c)
            start += c
        return out

    @property
    def out_channels(self) -> int:
        return sum(int(self.specs[n]["components"]) for n in self.targets)

    def lift_channels(self) -> tuple[list[int], list[int]]:
        """Output channels and the input channels added to them, for the targets that `lift` predicts as an
        input field plus a learned difference: a boundary-value target (u = g on the Dirichlet boundary) from
        the input's extension inward, a velocity from the free stream it tends to. The model then learns only
        what the input does not already say."""
        layout, slices = self.layout, self.target_slices
        targets, sources = [], []
        for target, source in self.lift.items():
            if target not in slices:
                raise GeoopError(f"data.lift names {target!r}, which is not a target (targets: {list(slices)})",
                                 fix="lift only target fields, e.g. data.lift={u: g}")
            if source not in self.inputs:
                raise GeoopError(f"data.lift lifts {target!r} by {source!r}, which is not an input "
                                 f"(inputs: {list(self.inputs)})", fix="name an input field of the same components")
            masked = bool(self.specs[source].get("mask"))
            if masked and not layout.extension:
                raise GeoopError(f"data.lift: {source!r} is boundary data; lifting by it needs its extension inward",
                                 fix="leave data.extension at its default (or > 0)")
            s = slices[target]
            channels = layout.channels_of(source, extended=masked)
            if len(channels) != s.stop - s.start:
                raise GeoopError(f"data.lift: {target!r} has {s.stop - s.start} components but {source!r} has "
                                 f"{len(channels)}", fix="lift a target by an input with as many components")
            targets += list(range(s.start, s.stop))
            sources += channels
        return targets, sources

    def scale_channels(self) -> list[tuple[list[int], list[int], float]]:
        """(output channels, input channels, power k) for each target that `scale` has the model learn in units
        of an input's magnitude: target / |input|^k, e.g. a velocity over the free-stream speed (k = 1) and a
        kinematic pressure over its square (k = 2), which makes flows at different speeds look alike. The
        magnitude is taken per point over the input's components."""
        layout, slices = self.layout, self.target_slices
        out = []
        for target, text in self.scale.items():
            source, _, power = str(text).partition("^")
            source = source.strip()
            if target not in slices:
                raise GeoopError(f"data.scale names {target!r}, which is not a target (targets: {list(slices)})",
                                 fix="scale only target fields, e.g. data.scale={p: 'freestream^2'}")
            if source not in self.inputs or self.specs[source].get("mask"):
                raise GeoopError(f"data.scale scales {target!r} by {source!r}, which is not an input defined "
                                 f"everywhere (inputs: {list(self.inputs)})",
                                 fix="name an unmasked input field, e.g. freestream")
            try:
                k = float(power) if power else 1.0
            except ValueError:
                raise GeoopError(f"data.scale: {text!r} is not 'input' or 'input^k'", fix="e.g. freestream^2") \
                    from None
            s = slices[target]
            out.append((list(range(s.start, s.stop)), layout.channels_of(source), k))
        return out
