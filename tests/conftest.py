"""Shared fixtures: small analytic geometries built without any mesher."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import Delaunay

from geoop import Geometry

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
