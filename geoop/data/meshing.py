"""gmsh in a child process: gmsh can hang or crash on bad input, so every mesh is made in a forked process
with a time limit, and a failure is an error the caller can report and skip."""
from __future__ import annotations

import multiprocessing as mp
import os
import tempfile
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from geoop.errors import GeoopError


class MeshingError(GeoopError):
    """gmsh failed, crashed or ran past its time limit on one sample."""


def import_gmsh():
    """The gmsh module, or an error that says how to install it (it is GPL, so an optional extra)."""
    try:
        import gmsh
    except ImportError as e:
        raise GeoopError("the dataset generators need gmsh", fix="pip install 'geoop[data]'") from e
    return gmsh


def _child(build: Callable[..., None], args: tuple, save_as: str | None, conn) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # gmsh prints to stdout even with General.Terminal = 0
    try:
        gmsh = import_gmsh()
        gmsh.initialize(interruptible=False)
        gmsh.option.setNumber("General.Terminal", 0)
        gmsh.option.setNumber("General.NumThreads", 1)
        gmsh.option.setNumber("Mesh.RandomSeed", 1)
        build(gmsh, *args)
        if save_as is not None:  # what OpenFOAM's gmshToFoam reads: MSH 2.2, ASCII, physical groups
            gmsh.option.setNumber("Mesh.MshFileVersion", 2.2)
            gmsh.option.setNumber("Mesh.Binary", 0)
            gmsh.write(save_as)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "mesh.msh")
            gmsh.option.setNumber("Mesh.MshFileVersion", 4.1)
            gmsh.option.setNumber("Mesh.Binary", 1)
            gmsh.write(path)
            import meshio

            mesh = meshio.read(path)
        gmsh.finalize()
        cells = {}
        for block in mesh.cells:
            cells.setdefault(block.type, []).append(block.data.astype(np.int64))
        conn.send(("ok", mesh.points, {t: np.concatenate(c) for t, c in cells.items()}))
    except BaseException:  # report everything to the parent, which decides
        conn.send(("error", traceback.format_exc(limit=3)))
    finally:
        conn.close()


def mesh_with_gmsh(build: Callable[..., None], *args: Any, timeout: float = 60.0, save_as: str | None = None
                   ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Run `build(gmsh, *args)` (which creates a model and generates its mesh) in a forked child; with
    `save_as`, the mesh is also written there as MSH 2.2 (ASCII, with its physical groups).

    Returns points `(N, 3)` and cells by type. Raises `MeshingError` on failure, crash or timeout."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(build, args, save_as, child), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            raise MeshingError(f"gmsh did not finish within {timeout:.0f} s", fix="simplify the shape or raise "
                               "the time limit (--mesh-timeout)")
        message = parent.recv()
    except EOFError:
        raise MeshingError(f"gmsh crashed (exit code {proc.exitcode})") from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
    if message[0] != "ok":
        raise MeshingError(f"gmsh failed: {message[1].strip().splitlines()[-1]}")
    return message[1], message[2]


def centred_closed_surface(path: str):
    """A closed surface file as a `trimesh.Trimesh` centred on its bounding box's middle (for a generator to
    pose); an error naming the file when it does not close a volume."""
    from geoop.errors import NotWatertightError
    from geoop.io import load

    g = load(path)
    if not g.is_watertight:
        raise NotWatertightError("the body surface is not closed", path=path,
                                 fix="repair it (e.g. trimesh.repair.fill_holes) or pick another shape")
    mesh = g.trimesh.copy()
    mesh.apply_translation(-mesh.bounds.mean(axis=0))
    return mesh


def drop_unused_nodes(points: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Keep only the points that `cells (C, k)` use (gmsh also returns geometry-only nodes) and renumber."""
    used = np.unique(cells)
    remap = np.full(len(points), -1)
    remap[used] = np.arange(len(used))
    return points[used], remap[cells]


#: distance over which a graded mesh's size grows from fine to coarse (the families live in the unit square)
GRADING_REACH = 0.35


def graded_sizes(h: float, grading: float, fine_factor: float) -> tuple[float, float]:
    """(fine, coarse) sizes of a graded mesh with `coarse = grading x fine` and `fine = fine_factor x h /
    sqrt(grading)`; a family picks `fine_factor` so that its graded meshes have about as many nodes as its
    uniform ones of size h."""
    fine = fine_factor * h / np.sqrt(grading)
    return fine, fine * grading


def grade_towards(gmsh, curves: list[int], fine: float, coarse: float, reach: float) -> None:
    """Make the current gmsh model's mesh size grow linearly with the distance to `curves`: `fine` on them,
    `coarse` from `reach` away (the size of every other source is lifted so that this field alone decides)."""
    field = gmsh.model.mesh.field
    distance = field.add("Distance")
    field.setNumbers(distance, "CurvesList", curves)
    field.setNumber(distance, "Sampling", 200)
    ramp = field.add("Threshold")
    field.setNumber(ramp, "InField", distance)
    for name, value in (("SizeMin", fine), ("SizeMax", coarse), ("DistMin", 0.0), ("DistMax", reach)):
        field.setNumber(ramp, name, value)
    field.setAsBackgroundMesh(ramp)
    for option in ("MeshSizeFromPoints", "MeshSizeFromCurvature", "MeshSizeExtendFromBoundary"):
        gmsh.option.setNumber(f"Mesh.{option}", 0)
    gmsh.option.setNumber("Mesh.MeshSizeMin", 0.0)
    gmsh.option.setNumber("Mesh.MeshSizeMax", coarse)
