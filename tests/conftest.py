"""Shared fixtures: small analytic geometries built without any mesher."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import Delaunay

from geoop import Geometry
from geoop.data.random_fields import FourierField

torch.set_num_threads(1)


def disk_mesh(radius: float = 1.0, rings: int = 24) -> Geometry:
    """2D triangulated disk: concentric rings of points, Delaunay triangles."""
    pts = [np.zeros((1, 2))]
    for i in range(1, rings + 1):
        m = 6 * i
        t = 2 * np.pi * np.arange(m) / m
        pts.append(radius * i / rings * np.stack([np.cos(t), np.sin(t)], axis=1))
    p = np.concatenate(pts)
    return Geometry(p, {"triangle": Delaunay(p).simplices})


def box_hexes(n: int = 6, size=(1.0, 2.0, 0.5)) -> Geometry:
    """Structured hexahedral mesh of a box, VTK node order."""
    axes = [np.linspace(0, s, n + 1) for s in size]
    p = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    idx = np.arange(len(p)).reshape(n + 1, n + 1, n + 1)
    c = idx[:-1, :-1, :-1].ravel()
    dx, dy, dz = (n + 1) ** 2, n + 1, 1
    hexes = np.stack([c, c + dx, c + dx + dy, c + dy, c + dz, c + dx + dz, c + dx + dy + dz, c + dy + dz], axis=1)
    return Geometry(p, {"hexahedron": hexes})


def box_tets(n: int = 6, size=(1.0, 2.0, 0.5)) -> Geometry:
    """The same box with each hexahedron split into six tetrahedra."""
    hexes = box_hexes(n, size)
    return Geometry(hexes.points, {"tetra": hexes.simplices})


def sphere_surface(subdivisions: int = 4, radius: float = 1.0) -> Geometry:
    m = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    return Geometry(m.vertices, {"triangle": m.faces})


def antiderivative_sample(rng: np.random.Generator, n: int):
    """Random smooth f at n random points of the unit square and u(x, y) = integral_0^x f(s, y) ds, exactly."""
    field = FourierField(rng, 2, max_wavenumber=2, alpha=2.0)
    p = rng.random((n, 2))
    start = np.stack([np.zeros(n), p[:, 1]], 1) @ field.wavevectors.T + field.phases
    arg = p @ field.wavevectors.T + field.phases
    w1 = field.wavevectors[:, 0]
    safe = np.where(w1 != 0, w1, 1.0)
    terms = np.where(w1 != 0, (np.sin(arg) - np.sin(start)) / safe, p[:, :1] * np.cos(arg))
    u = field.mean * p[:, 0] + field.scale * terms @ field.amplitudes
    as_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return as_t(p), as_t(field(p))[:, None], as_t(u)[:, None]


def antiderivative_samples(n: int = 80, seed: int = 0) -> list:
    """n samples (points, f, u) of the antiderivative problem, 300-600 points each."""
    rng = np.random.default_rng(seed)
    return [antiderivative_sample(rng, int(rng.integers(300, 600))) for _ in range(n)]


def smoothing_samples(n: int = 80, seed: int = 0, width: float = 0.25) -> list:
    """n samples (points, f, u) of a global smoothing operator: u(x) is the Gaussian-weighted mean of a random
    smooth f over all points (width `width`), 300-600 random points of the unit square each."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        p = rng.random((int(rng.integers(300, 600)), 2))
        f = FourierField(rng, 2, max_wavenumber=3)(p)
        kernel = np.exp(-((p[:, None] - p[None]) ** 2).sum(-1) / width**2)
        as_t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
        out.append((as_t(p), as_t(f)[:, None], as_t(kernel @ f / kernel.sum(1))[:, None]))
    return out


def trivial_errors(samples: list, n_train: int = 64, k: int = 16) -> dict[str, float]:
    """Mean test relative L2 of two predictors that learn nothing about the input function, the floors a
    learning test must beat by far: each test sample's own best constant (an oracle: its mean value), and the
    training set's mean field (the k-nearest-neighbour average of every training target around each point)."""
    from scipy.spatial import cKDTree

    rel = lambda pred, y: float(np.linalg.norm(pred - y) / np.linalg.norm(y))  # noqa: E731
    pos = np.concatenate([s[0].numpy() for s in samples[:n_train]])
    values = np.concatenate([s[2].numpy() for s in samples[:n_train]])
    tree = cKDTree(pos)
    const, field = [], []
    for p, _, u in samples[n_train:]:
        u = u.numpy()
        const.append(rel(np.full_like(u, u.mean()), u))
        field.append(rel(values[tree.query(p.numpy(), k=k)[1]].mean(axis=1), u))
    return {"constant_oracle": float(np.mean(const)), "mean_field": float(np.mean(field))}


def train_and_test(model: torch.nn.Module, samples: list, prepared: list, collate, epochs: int,
                   n_train: int = 64, batch: int = 8, lr: float = 3e-3) -> float:
    """Train on the first n_train samples (relative L2 per sample, AdamW, one-cycle); mean test relative L2
    on the rest. `prepared[i]` is what the model needs for sample i; `collate` joins several."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * n_train // batch)
    rel = lambda pred, y: (pred - y).norm() / y.norm()  # noqa: E731
    for epoch in range(epochs):
        order = np.random.default_rng(epoch).permutation(n_train)
        for b in range(0, n_train, batch):
            idx = order[b:b + batch]
            joined = collate([prepared[i] for i in idx])
            pred = model(torch.cat([samples[i][1] for i in idx]), joined)
            y = torch.cat([samples[i][2] for i in idx])
            loss = torch.stack([rel(pred[joined.query_batch == k], y[joined.query_batch == k])
                                for k in range(len(idx))]).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    with torch.no_grad():
        return float(np.mean([float(rel(model(samples[i][1], prepared[i]), samples[i][2]))
                              for i in range(n_train, len(samples))]))


@pytest.fixture
def disk() -> Geometry:
    return disk_mesh()


@pytest.fixture
def box() -> Geometry:
    return box_tets()


@pytest.fixture
def sphere() -> Geometry:
    return sphere_surface()


@pytest.fixture
def fielded_box(box: Geometry) -> Geometry:
    p = box.points
    n_tets = len(box.cells["tetra"])
    return Geometry(p, box.cells,
                    point_data={"temperature": np.sin(p[:, 0]) + p[:, 2], "velocity": p * [1.0, -2.0, 0.5],
                                "region": (p[:, 0] > 0.5).astype(np.int64)},
                    cell_data={"pressure": {"tetra": np.linspace(0, 1, n_tets)}})


OPENFOAM = Path("/usr/share/openfoam/etc/bashrc")
CAVITY = Path("/usr/share/doc/openfoam-examples/examples/incompressible/icoFoam/cavity/cavity")
needs_openfoam = pytest.mark.skipif(not (OPENFOAM.exists() and CAVITY.exists()),
                                    reason="OpenFOAM is not installed (apt-get install openfoam openfoam-examples)")


def unpacked_tutorial(source: Path, folder: Path) -> Path:
    """A copy of an OpenFOAM tutorial case with its gzipped files unpacked."""
    shutil.copytree(source, folder)
    subprocess.run(["find", str(folder), "-name", "*.gz", "-exec", "gunzip", "{}", ";"], check=True)
    return folder


def run_openfoam(folder: Path, commands: str) -> None:
    """`commands` (a shell line) run in the case `folder` with OpenFOAM's environment, output discarded."""
    script = f"source {OPENFOAM} >/dev/null 2>&1; cd {folder} && {commands}"
    subprocess.run(["bash", "-c", script], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def run_cavity(folder: Path, lid: float, then: str = "true") -> Path:
    """The icoFoam lid-driven cavity with lid speed `lid`, meshed and run to its end, then `then`."""
    unpacked_tutorial(CAVITY, folder)
    u = folder / "0" / "U"
    u.write_text(u.read_text().replace("uniform (1 0 0)", f"uniform ({lid} 0 0)"))
    run_openfoam(folder, f"blockMesh && icoFoam && {then}")
    return folder
