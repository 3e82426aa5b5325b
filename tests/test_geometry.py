"""Derived geometry: boundaries, normals, measures, quadrature, sampling, normalization, SDF."""
from __future__ import annotations

import numpy as np
import pytest
import trimesh

import geoop
from geoop import Geometry, UnitBoxTransform
from geoop.errors import NotFittedError
from geoop.geometry import knn_weights, quadrature_weights
from tests.conftest import box_hexes, box_tets, disk_mesh


def test_kind_and_dim(disk, box, sphere):
    assert (disk.dim, disk.kind) == (2, "volume")
    assert (box.dim, box.kind) == (3, "volume")
    assert (sphere.dim, sphere.kind) == (3, "surface")
    assert Geometry(np.random.rand(5, 3)).kind == "points"


def test_disk_boundary_is_the_outer_ring_with_outward_normals(disk):
    r = np.linalg.norm(disk.points, axis=1)
    np.testing.assert_array_equal(disk.boundary_mask, np.isclose(r, 1.0))
    on = disk.boundary_mask
    cos = (disk.normals[on] * disk.points[on]).sum(1) / r[on]
    assert cos.min() > 0.99
    assert np.all(disk.normals[~on] == 0)


@pytest.mark.parametrize("make", [box_tets, box_hexes])
def test_box_boundary_nodes_and_normals(make):
    g = make(4, (1.0, 2.0, 0.5))
    p = g.points
    on_face = np.isclose(p, 0).any(1) | np.isclose(p, [1.0, 2.0, 0.5]).any(1)
    np.testing.assert_array_equal(g.boundary_mask, on_face)
    center_of_top = np.flatnonzero(np.isclose(p[:, 2], 0.5) & np.isclose(p[:, 0], 0.5) & np.isclose(p[:, 1], 1.0))
    np.testing.assert_allclose(g.normals[center_of_top], [[0, 0, 1]], atol=1e-12)
    assert g.measure == pytest.approx(1.0, rel=1e-12)
    assert g.is_watertight and g.trimesh.is_watertight


def test_sphere_vertex_normals_point_outward(sphere):
    cos = (sphere.normals * sphere.points).sum(1)
    assert cos.min() > 0.99


def test_inverted_closed_surface_is_rewound_outward(sphere):
    flipped = Geometry(sphere.points, {"triangle": sphere.cells["triangle"][:, ::-1]})
    assert flipped.trimesh.volume > 0
    assert (flipped.normals * flipped.points).sum(1).min() > 0.99


@pytest.mark.parametrize("make, exact", [(lambda: disk_mesh(), None), (box_tets, 1.0), (box_hexes, 1.0)])
def test_lumped_weights_integrate_constants_and_linear_functions_exactly(make, exact):
    g = make()
    w = quadrature_weights(g)
    area = exact if exact is not None else g.measure
    assert w.sum() == pytest.approx(area, rel=1e-12)
    lin = 1.0 + g.points @ np.arange(1, g.dim + 1)
    centroid = (g.simplex_measures[:, None] * g.points[g.simplices].mean(1)).sum(0) / g.measure
    assert (w * lin).sum() == pytest.approx(area * (1 + centroid @ np.arange(1, g.dim + 1)), rel=1e-12)


def test_lumped_weights_converge_to_the_disk_area():
    # polygonal disks approach pi; within 1% at 24 rings
    assert quadrature_weights(disk_mesh(rings=24)).sum() == pytest.approx(np.pi, rel=0.01)


def test_surface_weights_integrate_the_sphere_area(sphere):
    assert quadrature_weights(sphere).sum() == pytest.approx(4 * np.pi, rel=0.01)
    z2 = (quadrature_weights(sphere) * sphere.points[:, 2] ** 2).sum()
    assert z2 == pytest.approx(4 * np.pi / 3, rel=0.01)


def test_knn_weights_follow_a_non_uniform_density():
    rng = np.random.default_rng(0)
    # density proportional to 1 + 4x on the unit square (inverse-CDF sampling)
    u = rng.random(20000)
    x = (-1 + np.sqrt(1 + 8 * u * 3)) / 4
    p = np.stack([x, rng.random(20000)], axis=1)
    w = knn_weights(p)
    assert w.sum() == pytest.approx(1.0, rel=0.05)
    assert (w * p[:, 0]).sum() == pytest.approx(0.5, rel=0.05)
    assert p[:, 0].mean() == pytest.approx(0.61, abs=0.02)  # what equal weights would wrongly give


def test_surface_sampling_is_uniform_on_the_sphere_with_normals_and_fields(sphere):
    g = sphere.with_point_data(z=sphere.points[:, 2])
    s = geoop.sample_surface(g, 20000, seed=0)
    assert s.n_points == 20000 and s.kind == "points"
    assert np.abs(np.linalg.norm(s.points, axis=1) - 1).max() < 0.01
    assert (s.normals * s.points).sum(1).min() > 0.98
    np.testing.assert_allclose(s.point_data["z"], s.points[:, 2], atol=1e-12)
    assert np.abs(s.points.mean(0)).max() < 0.02  # no hemisphere favoured


def test_volume_sampling_in_a_mesh_interpolates_linear_fields(box):
    g = box.with_point_data(f=box.points @ [1.0, 2.0, 3.0])
    s = geoop.sample_volume(g, 5000, seed=0)
    np.testing.assert_allclose(s.point_data["f"], s.points @ [1.0, 2.0, 3.0], atol=1e-12)
    assert s.points.min(0) == pytest.approx([0, 0, 0], abs=0.05)
    assert s.points.mean(0) == pytest.approx([0.5, 1.0, 0.25], abs=0.03)


def test_volume_sampling_inside_a_closed_surface(sphere):
    s = geoop.sample_volume(sphere, 4000, seed=1)
    r = np.linalg.norm(s.points, axis=1)
    assert r.max() <= 1.0
    assert np.mean(r < 0.5) == pytest.approx(0.125, abs=0.03)  # uniform by volume


def test_unit_box_transform_round_trips_and_keeps_aspect():
    p = np.random.default_rng(0).random((100, 3)) * [10, 2, 1] + [5, -3, 0]
    t = UnitBoxTransform().fit(p)
    q = t.transform(p)
    assert q.min() >= -1 - 1e-12 and q.max() <= 1 + 1e-12
    assert np.ptp(q[:, 0]) == pytest.approx(2.0)
    np.testing.assert_allclose(t.inverse_transform(q), p, atol=1e-12)
    t2 = UnitBoxTransform.from_state_dict(t.state_dict())
    np.testing.assert_array_equal(t2.transform(p), q)
    unit = UnitBoxTransform("unit", margin=0.1).fit_transform(p)
    assert unit.min() >= 0.1 / 1.2 - 1e-12 and unit.max() <= 1 - 0.1 / 1.2 + 1e-12


def test_unfitted_transform_raises():
    with pytest.raises(NotFittedError, match="fit"):
        UnitBoxTransform().transform(np.zeros((1, 3)))


# ---------------------------------------------------------------- signed distance
def test_sdf_of_a_sphere_matches_the_analytic_distance():
    sphere = Geometry(*(lambda m: (m.vertices, {"triangle": m.faces}))(trimesh.creation.icosphere(5)))
    q = np.random.default_rng(0).uniform(-2, 2, size=(5000, 3))
    sdf = geoop.signed_distance(sphere, q)
    exact = np.linalg.norm(q, axis=1) - 1
    assert np.abs(sdf - exact).max() < 2e-3  # chord error of a 20k-face icosphere
    assert np.all(np.sign(sdf[np.abs(exact) > 3e-3]) == np.sign(exact[np.abs(exact) > 3e-3]))


def test_sdf_of_a_box_is_exact_and_its_closest_points_lie_on_it(box):
    rng = np.random.default_rng(0)
    q = rng.uniform([-1, -1, -1], [2, 3, 1.5], size=(3000, 3))
    hi = np.array([1.0, 2.0, 0.5])
    outside = np.linalg.norm(np.maximum(np.maximum(-q, q - hi), 0), axis=1)
    exact = np.where(outside > 0, outside, -np.minimum(q, hi - q).min(1))
    sdf, closest = geoop.signed_distance(box, q, return_closest=True)
    np.testing.assert_allclose(sdf, exact, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(closest - q, axis=1), np.abs(sdf), atol=1e-12)


def test_sdf_of_a_2d_disk_from_its_boundary_edges():
    disk = disk_mesh(rings=40)
    q = np.random.default_rng(0).uniform(-2, 2, size=(4000, 2))
    sdf = geoop.signed_distance(disk, q)
    exact = np.linalg.norm(q, axis=1) - 1
    assert np.abs(sdf - exact).max() < 1e-3
    assert geoop.contains(disk, np.array([[0.0, 0.0], [1.5, 0.0]])).tolist() == [True, False]


def test_sdf_of_a_2d_domain_with_a_hole_is_positive_in_the_hole():
    from scipy.spatial import Delaunay

    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    outer = np.stack([np.cos(t), np.sin(t)], 1)
    inner = 0.4 * outer
    grid = np.stack(np.meshgrid(np.linspace(-1, 1, 30), np.linspace(-1, 1, 30)), -1).reshape(-1, 2)
    r = np.linalg.norm(grid, axis=1)
    p = np.concatenate([outer, inner, grid[(r > 0.45) & (r < 0.95)]])
    tri = Delaunay(p).simplices
    mid = p[tri].mean(1)
    annulus = Geometry(p, {"triangle": tri[np.linalg.norm(mid, axis=1) > 0.4]})
    sdf = geoop.signed_distance(annulus, np.array([[0.0, 0.0], [0.7, 0.0], [2.0, 0.0]]))
    assert sdf[0] == pytest.approx(0.4, abs=0.01)
    assert sdf[1] == pytest.approx(-0.3, abs=0.01)
    assert sdf[2] == pytest.approx(1.0, abs=0.01)


def test_sdf_sign_agrees_with_ray_containment_on_a_torus():
    torus = trimesh.creation.torus(1.0, 0.3, major_sections=100, minor_sections=50)
    g = Geometry(torus.vertices, {"triangle": torus.faces})
    q = np.random.default_rng(0).uniform(-1.5, 1.5, size=(20_000, 3))
    sdf = geoop.signed_distance(g, q)
    np.testing.assert_array_equal(sdf < 0, torus.contains(q))


def test_a_plane_cuts_tetrahedra_into_the_exact_section_with_linear_fields_exact():
    """Perturbed grid points, Delaunay tetrahedra: the section of the unit cube by z = 0.37 is the unit square
    (area 1, every cut cell a triangle or two), and a linear field is exact on it."""
    from scipy.spatial import Delaunay

    from geoop.geometry.slicing import slice_tetrahedra

    grid = np.stack(np.meshgrid(*[np.linspace(0, 1, 6)] * 3, indexing="ij"), -1).reshape(-1, 3)
    inner = ((grid > 0.01) & (grid < 0.99)).all(1)
    grid[inner] += np.random.default_rng(0).normal(scale=0.02, size=(inner.sum(), 3))
    tets = Delaunay(grid).simplices
    field = grid @ np.array([1.0, 2.0, 3.0])
    cut = slice_tetrahedra(grid, tets, np.stack([field, -field], 1), axis=2, offset=0.37)
    p = cut.points[cut.triangles]
    area = 0.5 * np.abs((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                        - (p[:, 1, 1] - p[:, 0, 1]) * (p[:, 2, 0] - p[:, 0, 0]))
    assert cut.axes == (0, 1) and area.sum() == pytest.approx(1.0, rel=1e-12)
    assert np.allclose(cut.values[:, 0], cut.points @ [1.0, 2.0] + 3 * 0.37, atol=1e-12)
    assert np.allclose(cut.values[:, 1], -cut.values[:, 0])


def test_facets_seen_once_and_unique_edges_equal_numpys_row_unique():
    """The sort-based helpers list what `np.unique(..., axis=0)` lists, in its order."""
    from geoop.geometry.cells import rows_seen_once, unique_edges

    rng = np.random.default_rng(3)
    keys = np.sort(rng.integers(0, 50, size=(400, 3)), axis=1)
    keys = np.concatenate([keys, keys[:300], np.full((1, 3), -1)])  # repeated rows, and a padding-like one
    rng.shuffle(keys)
    _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
    np.testing.assert_array_equal(rows_seen_once(keys), first[counts == 1])
    triangles = rng.integers(0, 60, size=(200, 3))
    pairs = np.sort(np.concatenate([triangles[:, [0, 1]], triangles[:, [1, 2]], triangles[:, [2, 0]]]), axis=1)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    np.testing.assert_array_equal(unique_edges({"triangle": triangles}), np.unique(pairs, axis=0))
