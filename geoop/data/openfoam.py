"""OpenFOAM as a program (Debian's `openfoam` v1912; GPL, so geoop runs it and never links it): find it, write
case dictionaries, run its commands with a time limit, and read back what it wrote (force coefficients,
residual history). A case is read into a `Geometry` by `geoop.io` (`read_openfoam`), as a user's would be."""
from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import numpy as np

from geoop.errors import GeoopError

#: where Debian's package puts the environment script every OpenFOAM command needs
BASHRC_CANDIDATES = ("/usr/share/openfoam/etc/bashrc", "/usr/lib/openfoam/openfoam/etc/bashrc")
INSTALL = "sudo apt-get install openfoam (Debian/Ubuntu; v1912 is tested), or set GEOOP_OPENFOAM_BASHRC to the " \
          "etc/bashrc of an OpenFOAM installation"


class SolverError(GeoopError):
    """An OpenFOAM command failed or ran past its time limit on one case."""


def openfoam_bashrc() -> Path:
    """The `etc/bashrc` that sets up OpenFOAM's environment; an error naming the package when there is none."""
    given = os.environ.get("GEOOP_OPENFOAM_BASHRC")
    for candidate in ([given] if given else []) + list(BASHRC_CANDIDATES):
        if Path(candidate).is_file():
            return Path(candidate)
    raise GeoopError("OpenFOAM is not installed (no etc/bashrc found at "
                     f"{', '.join([given] if given else list(BASHRC_CANDIDATES))})", fix=INSTALL)


def run_openfoam(case: Path, command: str, log: str, timeout: float) -> None:
    """Run one OpenFOAM command line in `case` (all its output to `case/log`), after sourcing its environment.

    Raises `SolverError` with the log's last lines when it fails, or when it runs past `timeout` seconds."""
    bashrc = openfoam_bashrc()
    script = f"source {bashrc} >/dev/null 2>&1 || true; cd {shlex.quote(str(case))} && ( {command} ) > {log} 2>&1"
    try:
        done = subprocess.run(["bash", "-c", script], timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SolverError(f"`{command}` did not finish within {timeout:.0f} s", path=case) from None
    if done.returncode != 0:
        tail = (case / log).read_text(errors="replace").strip().splitlines()[-6:] if (case / log).is_file() else []
        raise SolverError(f"`{command}` failed (exit code {done.returncode}): {' | '.join(tail)}", path=case)


def foam_file(path: Path, cls: str, body: str) -> None:
    """Write an OpenFOAM dictionary or field file: the FoamFile header, then `body`."""
    header = ("FoamFile\n{\n    version 2.0;\n    format ascii;\n"
              f"    class {cls};\n    object {path.name};\n}}\n\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + body)


def set_patch_types(case: Path, types: dict[str, str]) -> None:
    """Set the `type` of named patches in `constant/polyMesh/boundary` (gmshToFoam makes every patch a plain
    `patch`; a 2D case needs its front and back `empty`, a body `wall`)."""
    path = case / "constant" / "polyMesh" / "boundary"
    text = path.read_text()
    for name, kind in types.items():
        text, n = re.subn(rf"(\b{re.escape(name)}\s*\{{\s*type\s+)\w+;", rf"\g<1>{kind};", text)
        if n != 1:
            raise SolverError(f"patch {name!r} not found in the mesh's boundary file", path=path)
    path.write_text(text)


def read_force_coefficients(case: Path, name: str = "forceCoeffs") -> dict[str, np.ndarray]:
    """The history a `forceCoeffs` function object wrote: column name (Time, Cd, Cl, CmPitch, ...) -> `(T,)`."""
    files = sorted((case / "postProcessing" / name).glob("*/coefficient*.dat"))
    if not files:
        raise SolverError(f"no {name} output (postProcessing/{name}/*/coefficient.dat)", path=case)
    lines = files[-1].read_text().splitlines()
    header = [ln for ln in lines if ln.startswith("#") and "Time" in ln][-1].lstrip("#").split()
    rows = np.array([[float(v) for v in ln.split()] for ln in lines if ln and not ln.startswith("#")])
    return {h: rows[:, i] for i, h in enumerate(header)}


def read_residuals(log: Path) -> tuple[int, bool, dict[str, float]]:
    """(iterations, converged, last initial residual per field) of a SIMPLE solver's log: converged means the
    solver stopped on its `residualControl` criterion, not on its iteration cap."""
    text = log.read_text(errors="replace")
    done = re.search(r"SIMPLE solution converged in (\d+) iterations", text)
    times = re.findall(r"^Time = (\d+)\s*$", text, flags=re.M)
    residuals = {}
    for field, value in re.findall(r"Solving for (\w+), Initial residual = ([0-9.eE+-]+)", text):
        residuals[field] = float(value)
    iterations = int(done.group(1)) if done else (int(times[-1]) if times else 0)
    return iterations, done is not None, residuals


def latest_time(case: Path) -> Path:
    """The latest time folder the solver wrote (numerically largest name)."""
    times = [p for p in case.iterdir() if p.is_dir() and re.fullmatch(r"[0-9.eE+-]+", p.name) and p.name != "0"]
    if not times:
        raise SolverError("the solver wrote no time folder", path=case)
    return max(times, key=lambda p: float(p.name))


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished child processes (the OpenFOAM programs it ran)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def keep_case(case: Path, folder: Path, params: dict[str, float], ignore: tuple[str, ...] = ()) -> None:
    """Copy a solved case to `folder` with its parameters in `params.json`, atomically (a staging copy renamed
    into place); files matching the glob patterns `ignore` stay behind."""
    import json
    import shutil

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(case, staging, ignore=shutil.ignore_patterns(*ignore))
    (staging / "params.json").write_text(json.dumps({k: float(v) for k, v in params.items()}, indent=1))
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
