"""A user's solver as a family: a shell command that, given one design's parameters, writes a result file or a
case folder, which is read back as `geoop data import` reads one (`ReadOptions`), the parameters becoming
constant input fields. It is how `geoop train --online` trains while a user's own solver runs
(`online.command`, see docs/online.md).

The command is a template: `{out}` is the path the result is to be written to (a fresh temporary folder, with
`result` the file or folder in it to read; empty: the folder itself, e.g. an OpenFOAM case) and `{name}` each
design parameter, e.g. `bash run_case.sh --angle {alpha} --speed {speed} --to {out}`. Each design parameter
is drawn uniformly from its range. The command runs in that temporary folder; a non-zero exit status, a
timeout or a missing result is a typed error quoting the end of its output."""
from __future__ import annotations

import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from geoop.data.designs import DesignSpace
from geoop.data.families.base import Family, FieldSpec
from geoop.data.read_options import ReadOptions
from geoop.errors import GeoopError
from geoop.geometry.geometry import Geometry


@dataclass(frozen=True)
class CommandSolver:
    """The command template, each parameter's (low, high), the fields to keep (`inputs` beyond the parameters,
    `targets`), how to read the result (`read`, as `ReadOptions.to_dict` gives it) and its name in the output
    folder (`result`)."""

    command: str
    ranges: Mapping[str, tuple[float, float]]
    inputs: tuple[str, ...]
    targets: tuple[str, ...]
    read: Mapping[str, Any]
    result: str = ""

    def draw(self, rng: np.random.Generator) -> dict[str, float]:
        """A design: every parameter uniform in its range."""
        return {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in self.ranges.items()}

    def make(self, rng: np.random.Generator, design: dict[str, float] | None = None, inputs_only: bool = False,
             timeout: float = 3600.0) -> Geometry:
        """Run the command for `design` (default: a random one) and read its result as a sample: the kept point
        fields, the parameters as constant point fields and as global data."""
        from geoop.data.importer import read_sample, source_field

        if inputs_only:
            raise GeoopError("a user's command gives its mesh only with its solution, so candidates cannot be "
                             "scored before they are solved", fix="use online.select=random or diversity")
        design = self.draw(rng) if design is None else {k: float(design[k]) for k in self.ranges}
        with tempfile.TemporaryDirectory(prefix="geoop-command-") as tmp:
            out = Path(tmp) / "out"
            out.mkdir()
            line = self.command.format(out=shlex.quote(str(out)), **{k: repr(v) for k, v in design.items()})
            try:
                done = subprocess.run(line, shell=True, cwd=tmp, capture_output=True, text=True, timeout=timeout)
            except subprocess.TimeoutExpired as e:
                raise GeoopError(f"the solver command ran past {timeout:.0f} s: {line}") from e
            said = (done.stdout + done.stderr).strip().splitlines()[-5:]
            if done.returncode != 0:
                raise GeoopError(f"the solver command failed (exit status {done.returncode}): {line}; it said: "
                                 + " | ".join(said), fix="run it by hand to see why")
            path = out / self.result if self.result else out
            if not path.exists() or (path.is_dir() and not any(path.iterdir())):
                raise GeoopError(f"the solver command wrote nothing at {self.result or '{out}'}: {line}",
                                 fix="write the result to the path given as {out}" + (f"/{self.result}"
                                                                                     if self.result else ""))
            g = read_sample(path, ReadOptions.from_dict(self.read), params=design)
            fields = {n: np.asarray(source_field(g, n, path, bool(self.read.get("cell_to_points"))), np.float64)
                      for n in (*self.inputs, *design, *self.targets)}
        return Geometry(g.points, g.cells, {n: v.reshape(g.n_points, -1) if v.ndim > 1 else v
                                            for n, v in fields.items()},
                        normals=g.given_normals, global_data={k: np.array(v) for k, v in design.items()})

    def family(self) -> Family:
        """The family that runs this command (its `solver` says which, with the ranges and read options, so a
        dataset folder of another command is refused). Its dimension and field components are not known before
        a result is read: they are 0 here, and the dataset takes them from its first sample."""
        spec = lambda n: FieldSpec(0, "as the command writes it", f"the command's field {n}")  # noqa: E731
        return Family(name="command", description=f"samples from the command {self.command!r}", dim=0,
                      inputs={**{n: FieldSpec(1, "as given", f"design parameter {n}") for n in self.ranges},
                              **{n: spec(n) for n in self.inputs}},
                      targets={n: spec(n) for n in self.targets}, make=self.make, default_n=0,
                      solver=f"the user's command {self.command!r} over {dict(self.ranges)}, its result "
                             f"{self.result or '{out}'} read with {dict(self.read)}", requires=(),
                      parameters=tuple(self.ranges), designs=DesignSpace(self.draw, dict(self.ranges)))
