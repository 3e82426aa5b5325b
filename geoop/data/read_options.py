"""`ReadOptions`: how a user's simulation file or case becomes a sample, the options that travel together from
`geoop data import` to the dataset's manifest and on to `geoop predict`."""
from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from geoop.errors import GeoopError


@dataclass(frozen=True)
class ReadOptions:
    """`columns`: the column names of headerless tables (CSV/TXT/NPY point clouds), e.g. "x,y,z,p".
    `patches`: OpenFOAM cases: boundary patches (names, wildcards) merged into one surface instead of the
    internal mesh; `time`: the time folder (None: the latest). `blocks`: VTM multiblocks: the blocks to read
    and merge. `at`: "points", or "cells" (cell centres as the points, cell fields as their fields).
    `cp`: (pressure field, rho, U_inf, p_inf), numbers or names of the case's parameters: adds the pressure
    coefficient `cp`. `cell_to_points`: carry cell fields to the points (by the cells' volumes)."""

    columns: str | None = None
    patches: str | None = None
    time: float | None = None
    blocks: str | None = None
    at: Literal["points", "cells"] = "points"
    cp: tuple[str, str, str, str] | None = None
    cell_to_points: bool = False

    def __post_init__(self) -> None:
        if self.at not in ("points", "cells"):
            raise GeoopError(f"--at {self.at!r}: choose points or cells")
        if self.cp is not None:
            if len(self.cp) != 4:
                raise GeoopError(f"--cp {','.join(map(str, self.cp))!r} is not FIELD,RHO,U_INF,P_INF",
                                 fix="e.g. --cp p,1,20,0 (numbers, or names of the case's parameters)")
            object.__setattr__(self, "cp", tuple(str(c).strip() for c in self.cp))
        if self.time is not None:
            object.__setattr__(self, "time", float(self.time))

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> ReadOptions:
        """From `to_dict`'s shape (or a manifest's `options`, which holds more keys than these)."""
        return cls(**{k: raw[k] for k in cls.__dataclass_fields__ if k in raw})

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable (`cp` as a list), as a manifest records it."""
        out = asdict(self)
        out["cp"] = None if self.cp is None else list(self.cp)
        return out


    def flags(self) -> str:
        """The `geoop` command-line options that give these settings (empty for a file read as it is)."""
        names = {"columns": "--columns", "patches": "--patches", "time": "--time", "blocks": "--blocks",
                 "at": "--at", "cp": "--cp", "cell_to_points": "--cell-to-point"}
        out = []
        for key, flag in names.items():
            value = getattr(self, key)
            if value == getattr(AS_IS, key):
                continue
            text = ",".join(value) if key == "cp" else str(value)
            out.append(flag if value is True else f"{flag} {shlex.quote(text)}")
        return " ".join(out)

    def filled_from(self, recorded: ReadOptions) -> ReadOptions:
        """These options, with every one left at its default taken from `recorded` (how a model's training
        files were read)."""
        return ReadOptions(**{k: getattr(recorded if getattr(self, k) == getattr(AS_IS, k) else self, k)
                              for k in self.__dataclass_fields__})

    def overriding(self, recorded: ReadOptions) -> list[str]:
        """The options given here (not at their default) that differ from `recorded`."""
        return [k for k in self.__dataclass_fields__
                if getattr(self, k) != getattr(AS_IS, k) and getattr(self, k) != getattr(recorded, k)]


#: a file read as it is (no columns, patches, blocks or Cp; its points as the sample's points)
AS_IS = ReadOptions()
