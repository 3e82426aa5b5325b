"""Operator layers and GINO: discretization and permutation invariance, batching of mixed geometries,
explicit empty neighborhoods, chunking, and a small model that learns."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial import Delaunay

from geoop import Geometry, signed_distance
from geoop.geometry import lumped_weights
from geoop.graph import bipartite_graph, radius_graph
from geoop.layers import FNO, KernelIntegral, SpectralConv
from geoop.models import GINO, GINOGraphs, GraphKernelNetwork
from geoop.errors import NotFittedError
from geoop.models.base import SampleInputs
from geoop.models.registry import DataFacts
from tests.conftest import antiderivative_samples, sphere_surface, train_and_test


def square_mesh(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points and lumped weights of a structured triangulation of the unit square with n cells per side."""
    t = np.linspace(0, 1, n + 1)
    p = np.stack(np.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    g = Geometry(p, {"triangle": Delaunay(p).simplices})
    return torch.tensor(p, dtype=torch.float64), torch.tensor(lumped_weights(g))


def smooth(p: torch.Tensor) -> torch.Tensor:
    return (torch.sin(2 * math.pi * p[:, :1]) * torch.cos(math.pi * p[:, 1:2]) + p[:, :1]).to(p.dtype)


def test_spectral_convolution_is_resolution_independent():
    torch.manual_seed(0)
    conv = SpectralConv(1, 1, (4, 4))
    values = []
    for n in (16, 32, 64):
        t = torch.arange(n) / n
        x, y = torch.meshgrid(t, t, indexing="ij")
        v = torch.sin(2 * math.pi * x) * torch.cos(2 * math.pi * y)
        with torch.no_grad():
            values.append(float(conv(v[None, None])[0, 0, n // 4, 0]))
    assert max(values) - min(values) < 1e-5


def _spectral_by_fft(conv: SpectralConv, v: torch.Tensor) -> torch.Tensor:
    """The definition: full FFTs, R on the kept lowest modes, the rest zero (what the matrix transforms skip)."""
    sizes, d = v.shape[2:], v.ndim - 2
    vf = torch.fft.rfftn(v, dim=tuple(range(2, v.ndim)), norm="forward")
    last = min(conv.kept[-1], sizes[-1] // 2 + 1)
    index, at = conv._indices(sizes)
    grids = torch.meshgrid(*[torch.tensor(i) for i in index], indexing="ij") if index else ()
    weights = torch.meshgrid(*[torch.tensor(i) for i in at], indexing="ij") if at else ()
    w = conv.dense_weight()[(slice(None), slice(None), *weights)][..., :last]
    low = vf[(slice(None), slice(None), *grids)][..., :last]
    out = torch.zeros(v.shape[0], conv.out_channels, *vf.shape[2:], dtype=vf.dtype)
    out[(slice(None), slice(None), *grids, slice(0, last))] = torch.einsum("bi...,io...->bo...", low, w)
    return torch.fft.irfftn(out, s=sizes, dim=tuple(range(2, 2 + d)), norm="forward")


@pytest.mark.parametrize("shape, modes", [((17,), (6,)), ((12, 9), (6, 4)), ((9, 10, 7), (4, 4, 4)),
                                          ((5, 6), (8, 16))])
def test_spectral_matrix_transforms_equal_the_fft(shape, modes):
    """The truncated DFT matrices give what full FFTs give, on odd and even axes and on grids smaller than the
    modes (clipped), so the speed-up changes no result."""
    torch.manual_seed(0)
    conv = SpectralConv(3, 2, modes, clip_modes=True)
    v = torch.randn(2, 3, *shape)
    with torch.no_grad():
        got, want = conv(v), _spectral_by_fft(conv, v)
    assert torch.allclose(got, want, atol=1e-5 * float(want.abs().max()))


def test_factorised_spectral_weights_are_smaller_and_work():
    dense, low = SpectralConv(16, 16, (8, 8)), SpectralConv(16, 16, (8, 8), rank=4)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(low) < count(dense) / 10
    assert low(torch.randn(2, 16, 16, 16)).shape == (2, 16, 16, 16)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_fno_keeps_grid_shape_with_padding(dim):
    fno = FNO(3, 2, (4,) * dim, hidden=8, n_layers=2, padding=0.25)
    assert fno(torch.randn(2, 3, *(8,) * dim)).shape == (2, 2, *(8,) * dim)


def test_kernel_integral_is_discretization_invariant_with_quadrature_weights():
    torch.manual_seed(0)
    # a kernel smooth at the mesh scale (4 octaves): finer embeddings alias on coarse point sets
    layer = KernelIntegral(2, 1, 1, radius=0.15, hidden=(32,), transform="linear", reduction="integral",
                           mollify=True, frequencies=4).double()
    t = torch.linspace(0.2, 0.8, 7, dtype=torch.float64)
    queries = torch.stack(torch.meshgrid(t, t, indexing="ij"), -1).reshape(-1, 2)
    outputs = {}
    for n in (16, 32, 64, 128):
        p, w = square_mesh(n)
        graph, _ = bipartite_graph(p, queries, 0.15)
        with torch.no_grad():
            outputs[n] = layer(p, queries, graph.edge_index, f_y=smooth(p), weights=w)
    diffs = [float((outputs[n] - outputs[128]).norm() / outputs[128].norm()) for n in (16, 32, 64)]
    assert diffs[0] > diffs[1] > diffs[2] and diffs[2] < 0.02, diffs


def test_weighted_average_is_invariant_to_sampling_density_where_the_plain_mean_is_not():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    uniform = rng.random((40000, 2))
    skewed = np.sqrt(rng.random((40000, 2)))  # density 4xy: most points near (1, 1)
    queries = torch.tensor([[0.5, 0.5], [0.3, 0.7], [0.7, 0.3]], dtype=torch.float64)
    results = {}
    for reduction in ("average", "mean"):
        layer = KernelIntegral(2, 1, 1, radius=0.3, hidden=(16,), transform="linear", reduction=reduction).double()
        out = []
        for pts in (uniform, skewed):
            p = torch.tensor(pts)
            from geoop.geometry import knn_weights

            w = torch.tensor(knn_weights(pts, k=16))
            graph, _ = bipartite_graph(p, queries, 0.3)
            with torch.no_grad():
                out.append(layer(p, queries, graph.edge_index, f_y=smooth(p), weights=w))
        results[reduction] = float((out[0] - out[1]).norm() / out[0].norm())
    assert results["average"] < 0.03 < results["mean"], results


def test_empty_neighborhoods_are_explicit_zeros_with_a_warning_or_filled_with_the_nearest():
    p = torch.rand(200, 2, dtype=torch.float64) * 0.5
    far = torch.tensor([[0.25, 0.25], [5.0, 5.0]], dtype=torch.float64)
    layer = KernelIntegral(2, 1, 1, radius=0.1, hidden=(8,), transform="linear", reduction="mean").double()
    graph, empty = bipartite_graph(p, far, 0.1, fill_empty="none")
    assert empty == 1
    with pytest.warns(UserWarning, match="50.0% of the 2 targets have no source"):
        out = layer(p, far, graph.edge_index, f_y=smooth(p))
    assert layer.coverage == 0.5 and float(out[1].detach().abs().max()) == 0.0
    filled, empty = bipartite_graph(p, far, 0.1, fill_empty="nearest")
    assert empty == 1 and set(filled.edge_index[1].tolist()) == {0, 1}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer(p, far, filled.edge_index, f_y=smooth(p))
    assert layer.coverage == 1.0


@pytest.mark.parametrize("transform", ["linear", "nonlinear", "linear_kernelonly"])
@pytest.mark.parametrize("frequencies", [0, 3])
def test_kernel_integral_computes_node_terms_once_and_equals_the_kernel_on_every_edge(transform, frequencies):
    """The kernel's first layer is split into per-source, per-target and per-edge parts; the sum must be the
    kernel MLP applied to each edge's full input [e(y), e(x), (y - x) / r (, f(y))]."""
    torch.manual_seed(0)
    p, w = square_mesh(12)
    q = torch.rand(50, 2, dtype=torch.float64)
    graph, _ = bipartite_graph(p, q, 0.2)
    channels = 0 if transform == "linear_kernelonly" else 2
    layer = KernelIntegral(2, channels, 2, radius=0.2, hidden=(8, 8), transform=transform,
                           frequencies=frequencies).double()
    f = torch.rand(len(p), 2, dtype=torch.float64)
    src, dst = graph.edge_index
    embed = layer.embed or (lambda t: t)
    parts = [embed(p[src]), embed(q[dst]), (p[src] - q[dst]) / 0.2] + ([f[src]] if transform == "nonlinear" else [])
    k = layer.kernel(torch.cat(parts, 1)) * (f[src] if channels else 1)
    expected = torch.zeros(len(q), 2, dtype=torch.float64).index_add_(0, dst, k * w[src, None])
    expected = expected / torch.zeros(len(q), dtype=torch.float64).index_add_(0, dst, w[src])[:, None]
    torch.testing.assert_close(layer(p, q, graph.edge_index, f_y=f if channels else None, weights=w), expected)


def test_chunked_kernel_integral_equals_one_pass_in_values_and_gradients(monkeypatch):
    """Edge blocks (targets split across two of them) and their recomputation in backward change nothing."""
    from geoop.layers import kernel_integral

    torch.manual_seed(0)
    p, w = square_mesh(24)
    q = torch.rand(300, 2, dtype=torch.float64)
    graph, _ = bipartite_graph(p, q, 0.12)
    layer = KernelIntegral(2, 1, 1, radius=0.12, hidden=(16,), transform="nonlinear", mollify=True).double()
    f = smooth(p).requires_grad_(True)
    full = layer(p, q, graph.edge_index, f_y=f, weights=w)
    (g_full,) = torch.autograd.grad(full.square().sum(), f)
    layer.chunk_edges = 500
    monkeypatch.setattr(kernel_integral, "EDGE_BLOCK", 333)
    chunked = layer(p, q, graph.edge_index, f_y=f, weights=w)
    (g_chunk,) = torch.autograd.grad(chunked.square().sum(), f)
    torch.testing.assert_close(chunked, full)
    torch.testing.assert_close(g_chunk, g_full)


def small_gino(dim: int, use_sdf: bool = False, **kw) -> GINO:
    torch.manual_seed(0)
    return GINO(dim, 1, 2, resolution=8, hidden=8, modes=4, n_layers=2, use_sdf=use_sdf, in_gno_hidden=(16,),
                out_gno_hidden=(16,), projection_hidden=16, **kw)


def test_gino_is_invariant_to_input_order_and_equivariant_to_query_order():
    model = small_gino(2)
    pts = torch.rand(300, 2)
    queries = torch.rand(50, 2)
    model.fit(DataFacts(train_points=[pts]))
    base = model(smooth(pts), model.prepare(pts, queries=queries))
    perm = torch.randperm(300)
    shuffled = model(smooth(pts[perm]), model.prepare(pts[perm], queries=queries))
    torch.testing.assert_close(shuffled, base, atol=1e-5, rtol=1e-4)
    qperm = torch.randperm(50)
    permuted = model(smooth(pts), model.prepare(pts, queries=queries[qperm]))
    torch.testing.assert_close(permuted, base[qperm], atol=1e-5, rtol=1e-4)


def test_gino_uses_the_sdf_of_a_closed_surface_on_its_grid():
    sphere = sphere_surface(3)
    model = small_gino(3, use_sdf=True)
    pts = torch.tensor(sphere.points, dtype=torch.float32)
    model.fit(DataFacts(train_points=[pts]))
    graphs = model.prepare(pts, inputs=SampleInputs(sdf_fn=lambda q: signed_distance(sphere, q)))
    r = graphs.grid.points.norm(dim=1)
    torch.testing.assert_close(graphs.grid_sdf[:, 0], r - 1, atol=0.02, rtol=0)
    assert model(smooth(pts), graphs).shape == (len(pts), 2)
    with pytest.raises(ValueError, match="sdf_fn"):
        model.prepare(pts)


def test_graph_kernel_network_runs_on_a_radius_graph_and_backpropagates():
    p, w = square_mesh(12)
    p, w = p.float(), w.float()
    net = GraphKernelNetwork(2, 1, 1, radius=0.2, width=16, depth=2, kernel_hidden=(16,))
    out = net(p, smooth(p).float(), radius_graph(p, 0.2).edge_index, w)
    out.square().mean().backward()
    assert out.shape == (len(p), 1) and all(q.grad is not None for q in net.parameters())


def test_a_small_gino_learns_the_antiderivative_operator_on_point_clouds():
    samples = antiderivative_samples()
    torch.manual_seed(0)
    model = GINO(2, 1, 1, resolution=16, hidden=24, modes=8, n_layers=3, use_sdf=False, in_gno_hidden=(32, 32),
                 out_gno_hidden=(64, 32), projection_hidden=64)
    model.fit(DataFacts(train_points=[p for p, _, _ in samples]))
    graphs = [model.prepare(p) for p, _, _ in samples]
    test = train_and_test(model, samples, graphs, GINOGraphs.collate, epochs=20)
    assert test < 0.15, test  # ~0.11 measured; predicting zero scores 1.0


def test_gino_sizes_its_radii_in_fit_keeps_them_in_its_state_and_refuses_to_run_unfitted(caplog):
    model = small_gino(2)
    pts = torch.rand(200, 2)
    with pytest.raises(NotFittedError, match="radii"):
        model.prepare(pts)
    model.fit(DataFacts(train_points=[pts, pts * 10]))  # sized on the first training geometry
    radii = model.radii.clone()
    assert float(radii[0]) == pytest.approx(1.5 * 1.1 / 7, rel=0.1)  # 1.5 spacings of an 8-node grid
    with caplog.at_level("WARNING", logger="geoop.models.gino"):
        model.prepare(pts, queries=torch.tensor([[0.5, 0.5], [9.0, 9.0]]))
    assert "1 of 2 query points had no latent node" in caplog.text
    fresh = small_gino(2)
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.radii, radii) and fresh.in_gno.radius == float(radii[0])
    model.prepare(pts * 10)  # preparing changes nothing on the model
    model.fit(DataFacts(train_points=[pts * 10]))  # nor does fitting again once sized
    assert torch.equal(model.radii, radii)


def test_gino_input_radius_grows_for_clouds_sparser_than_the_grid():
    model = GINO(2, 1, 1, resolution=64, hidden=8, modes=4, n_layers=1, use_sdf=False, in_gno_hidden=(8,),
                 out_gno_hidden=(8,), projection_hidden=8)
    sparse = torch.rand(30, 2)  # median spacing ~0.1, grid spacing ~0.017
    graphs = model.fit(DataFacts(train_points=[sparse])).prepare(sparse)
    in_r, out_r = (float(r) for r in model.radii)
    assert out_r == pytest.approx(1.5 * float(graphs.grid.spacing[0]), rel=1e-6) and in_r > 3 * out_r
