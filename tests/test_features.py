"""What models see and what they are scored on: boundary data carried inward, boundary (surface) weights for
fields that live on a boundary, robust and clipped errors, boundary data that do not fade as the mesh is refined,
local geometry, and targets lifted by an input."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from geoop import Geometry
from geoop.data.features import InputLayout, sample_features, target_weights
from geoop.errors import GeoopError
from geoop.geometry.local import boundary_curvature, distance_and_gradient
from geoop.geometry.quadrature import facet_weights
from geoop.graph.interpolation import extension_matrix
from geoop.models import GINO
from geoop.models.base import SampleInputs
from geoop.models.fields import Fields
from geoop.models.normalization import target_multiplier
from geoop.training.losses import field_errors
from tests.conftest import box_tets, disk_mesh

SPECS = {"k": {"components": 1}, "g": {"components": 1, "mask": "dirichlet"}, "u": {"components": 1}}


def _disk_with_data(rings: int) -> Geometry:
    g = disk_mesh(rings=rings)
    x, y = g.points.T
    return g.with_point_data(k=1 + x**2, g=np.cos(np.arctan2(y, x)) * (x**2 + y**2), dirichlet=g.boundary_mask,
                             u=x * y)


def test_boundary_data_carried_inward_keep_their_values_on_the_boundary_and_do_not_depend_on_the_mesh():
    coarse, fine = _disk_with_data(12), _disk_with_data(36)
    probes = np.array([[0.0, 0.0], [0.5, 0.0], [0.0, -0.7], [0.3, 0.4]])
    values = []
    for g in (coarse, fine):
        data = sample_features(g, ["k", "g"], SPECS)
        layout = InputLayout(("k", "g"), SPECS)
        ext = data.x[:, layout.channels_of("g", extended=True)[0]].numpy()
        on = g.boundary_mask
        np.testing.assert_allclose(ext[on], g.point_data["g"][on], rtol=1e-5, atol=1e-6)
        nearest = [int(np.argmin(((g.points - p) ** 2).sum(1))) for p in probes]
        values.append(ext[nearest])
    # cos(theta) on the unit circle: 0 at the centre by symmetry, the same shape on both meshes
    assert abs(values[1][0]) < 0.02
    np.testing.assert_allclose(values[0], values[1], atol=0.05)


def test_extension_is_exact_for_constant_data_and_empty_without_a_mask():
    g = disk_mesh(rings=10)
    pos, measure = torch.tensor(g.points), torch.tensor(facet_weights(g))
    carry = extension_matrix(pos, torch.tensor(g.boundary_mask), measure)
    torch.testing.assert_close(torch.sparse.mm(carry, torch.ones(len(pos), 1, dtype=torch.float32)),
                               torch.ones(len(pos), 1))
    empty = extension_matrix(pos, torch.zeros(len(pos), dtype=torch.bool), measure)
    assert empty._nnz() == 0 and empty.shape == (len(pos), len(pos))


def test_extension_neighbourhoods_are_the_same_searched_by_distances_or_by_neighbours():
    """Up to `max_neighbors` boundary nodes the extension computes every distance; beyond, it searches k nearest
    neighbours with growing k. Both give the same matrix, and a cap keeps each query's nearest nodes."""
    from scipy.spatial import Delaunay

    grid = np.stack(np.meshgrid(np.linspace(0, 4, 41), np.linspace(0, 1, 11), indexing="ij"), -1).reshape(-1, 2)
    g = Geometry(grid, {"triangle": Delaunay(grid).simplices})  # a long strip: no ball holds its whole boundary
    pos, measure, on = torch.tensor(g.points), torch.tensor(facet_weights(g)), torch.tensor(g.boundary_mask)
    every = extension_matrix(pos, on, measure)  # 100 boundary nodes <= 1024: all distances
    balls = torch.bincount(every.indices()[0], minlength=len(pos))
    searched = extension_matrix(pos, on, measure, max_neighbors=99)  # neighbour search, no ball reaches the cap
    assert int(balls.max()) <= 99 and torch.equal(every.indices(), searched.indices())
    torch.testing.assert_close(every.values(), searched.values())
    capped = extension_matrix(pos, on, measure, max_neighbors=5)
    assert int(torch.bincount(capped.indices()[0]).max()) == 5
    source = g.points[g.boundary_mask]
    rows, cols = capped.indices().numpy()
    for row in np.unique(rows)[::25]:
        distances = np.sort(np.linalg.norm(source - g.points[row], axis=1))
        taken = np.linalg.norm(g.points[cols[rows == row]] - g.points[row], axis=1)
        assert taken.max() <= distances[4] + 1e-12  # the five nearest


def test_a_field_on_a_body_surface_is_integrated_with_area_weights():
    box = box_tets(4, size=(1.0, 1.0, 1.0))
    top = np.isclose(box.points[:, 2], 1.0)
    w = target_weights(box, top, np.ones(box.n_points))
    assert w[~top].sum() == 0 and w.sum() == pytest.approx(1.0)  # the area of the top face, not a volume
    interior = box.points[:, 0] < 0.5  # a volume region: its quadrature weights
    np.testing.assert_allclose(target_weights(box, interior, np.full(box.n_points, 2.0)), 2.0 * interior)


def test_huber_error_equals_relative_l2_without_spikes_and_discounts_a_spike():
    torch.manual_seed(0)
    y = torch.randn(200, 1)
    pred = y + 0.01 * torch.randn(200, 1)
    args = (torch.ones(200, 1, dtype=torch.bool), torch.ones(200), torch.zeros(200, dtype=torch.long), 1,
            {"u": slice(0, 1)})
    plain = field_errors(pred, y, *args)["u"]
    torch.testing.assert_close(field_errors(pred, y, *args, huber=1.0)["u"], plain)
    spiked = pred.clone()
    spiked[0] += 50.0
    assert field_errors(spiked, y, *args, huber=1.0)["u"] < 0.5 * field_errors(spiked, y, *args)["u"]


def test_the_boundary_signal_of_gino_does_not_fade_as_the_mesh_is_refined():
    """Boundary data have their own boundary-weighted average: the grid sees the same boundary signal on a
    coarse and a fine mesh. Mixed into the volume average it would shrink with the boundary's share of a ball."""
    torch.manual_seed(0)
    model = GINO(2, 3, 1, resolution=12, hidden=8, modes=4, n_layers=1, use_sdf=False, boundary_channels=[1],
                 type_channels=[2], in_radius=0.3, out_radius=0.3, radius_factor=1.5)
    signals = []
    for rings in (10, 30):
        g = disk_mesh(rings=rings)
        on = torch.tensor(g.boundary_mask)
        f = torch.stack([torch.ones(g.n_points), on.float() * 2.0, on.float()], dim=1)
        graphs = model.prepare(torch.tensor(g.points, dtype=torch.float32), inputs=SampleInputs(
            boundary_weights=torch.tensor(facet_weights(g), dtype=torch.float32)))
        with torch.no_grad():
            signals.append(model.boundary_gno(graphs.pos, graphs.grid.points, graphs.boundary_edges,
                                              f_y=f[:, [1, 2]], weights=graphs.boundary_weights))
    reached = (signals[0].abs().sum(1) > 0) & (signals[1].abs().sum(1) > 0)
    assert reached.sum() > 20
    ratio = signals[1][reached].norm() / signals[0][reached].norm()
    assert abs(float(ratio) - 1) < 0.1, float(ratio)


def test_distance_gradient_and_curvature_of_a_circle():
    sdf = lambda p: np.linalg.norm(p, axis=1) - 0.5  # noqa: E731
    d, grad = distance_and_gradient(sdf, np.array([[0.1, 0.2], [0.0, -2.0]]))
    np.testing.assert_allclose(d, [np.hypot(0.1, 0.2) - 0.5, 1.5], atol=1e-9)
    np.testing.assert_allclose(grad, [np.array([0.1, 0.2]) / np.hypot(0.1, 0.2), [0.0, -1.0]], atol=1e-5)
    t = np.linspace(0, 2 * np.pi, 100, endpoint=False)
    ring = 0.5 * np.stack([np.cos(t), np.sin(t)], 1)
    np.testing.assert_allclose(boundary_curvature(ring, np.ones(100, bool), ring / 0.5), 2.0, rtol=1e-3)


def test_lifted_targets_and_their_misuse():
    fields = Fields(["k", "g"], ["u"], SPECS, extension=64, lift={"u": "g"})
    layout = InputLayout(("k", "g"), SPECS)
    assert fields.lift_channels() == ([0], layout.channels_of("g", extended=True))
    with pytest.raises(GeoopError, match="not a target"):
        replace(fields, lift={"k": "g"}).lift_channels()
    with pytest.raises(GeoopError, match="extension"):
        replace(fields, extension=0).lift_channels()


def test_scaled_targets_are_learned_in_units_of_an_input_magnitude():
    specs = {"U": {"components": 2}, "g": {"components": 1, "mask": "dirichlet"}, "p": {"components": 1},
             "v": {"components": 2}}
    fields = Fields(["U", "g"], ["p", "v"], specs, scale={"p": "U^2", "v": "U"})
    scales = fields.scale_channels()
    assert scales == [([0], [0, 1], 2.0), ([1, 2], [0, 1], 1.0)]
    x = torch.tensor([[3.0, 4.0, 0.0, 0.0], [0.6, 0.8, 1.0, 1.0]])
    np.testing.assert_allclose(target_multiplier(x, scales, 3).numpy(), [[25, 5, 5], [1, 1, 1]], rtol=1e-6)
    for bad, match in (({"U": "U"}, "not a target"), ({"p": "g"}, "defined everywhere"), ({"p": "U^two"}, r"input\^k")):
        with pytest.raises(GeoopError, match=match):
            replace(fields, scale=bad).scale_channels()


def _annulus(inner: float = 0.3, outer: float = 1.0, rings: int = 12) -> Geometry:
    """A ring of triangles between two circles; `hole` marks the inner circle's nodes (a body in a box)."""
    from scipy.spatial import Delaunay

    radii = np.linspace(inner, outer, rings)
    pts = np.concatenate([r * np.stack([np.cos(t), np.sin(t)], 1)
                          for r in radii for t in [np.linspace(0, 2 * np.pi, 64, endpoint=False)]])
    tris = Delaunay(pts).simplices
    tris = tris[np.linalg.norm(pts[tris].mean(1), axis=1) > inner]
    hole = np.isclose(np.linalg.norm(pts, axis=1), inner)
    return Geometry(pts, {"triangle": tris}, point_data={"hole": hole.astype(float)})


def test_a_body_inside_the_domain_is_the_only_boundary_the_features_see():
    from geoop.geometry.sdf import distance_function

    g = _annulus()
    queries = np.array([[0.95, 0.0], [0.5, 0.0]])
    to_body = distance_function(g, body="hole")(queries)
    np.testing.assert_allclose(to_body, [-0.65, -0.2], atol=2e-3)  # negative in the fluid, to the body alone
    np.testing.assert_allclose(distance_function(g)(queries), [-0.05, -0.2], atol=2e-3)
    data = sample_features(g, [], {}, body="hole")
    assert bool(data.boundary[g.point_data["hole"] > 0].all()) and int(data.boundary.sum()) == 64
    assert float(data.normal[~data.boundary].abs().max()) == 0.0
    np.testing.assert_allclose(float(data.boundary_weight.sum()), 2 * np.pi * 0.3, rtol=2e-3)
