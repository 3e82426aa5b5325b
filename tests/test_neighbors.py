"""Neighbor search: every backend equals the brute-force reference, on hard inputs too."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geoop.graph import (
    bipartite_knn_graph,
    bipartite_radius_graph,
    knn_graph,
    knn_search,
    mesh_edge_index,
    radius_graph,
    radius_search,
)
from geoop.graph.graphs import bipartite_graph
from geoop.graph.search_backends import PARALLEL_QUERIES, plan_chunks
from tests.conftest import box_hexes

RADIUS_BACKENDS = ["kdtree", "cell_list"]


def clouds():
    rng = np.random.default_rng(0)
    uniform = rng.random((1500, 3))
    clustered = np.concatenate([rng.normal(c, 0.01, size=(300, 3)) for c in rng.random((4, 3))])
    duplicates = np.repeat(rng.random((100, 3)), 5, axis=0)
    lattice = np.stack(np.meshgrid(*[np.arange(8.0)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.125
    one_cell = 0.5 + 1e-4 * rng.random((200, 3))
    plane2d = rng.random((800, 2))
    return {"uniform": (uniform, 0.1), "clustered": (clustered, 0.01), "duplicates": (duplicates, 0.05),
            "lattice_at_exact_spacing": (lattice, 0.125), "one_cell": (one_cell, 0.1), "planar": (plane2d, 0.05),
            "zero_radius_with_duplicates": (duplicates, 0.0), "radius_beyond_domain": (uniform[:300], 10.0)}


CLOUDS = clouds()


def same(a, b) -> None:
    assert torch.equal(a.edge_index, b.edge_index)
    assert torch.equal(a.distance, b.distance)


@pytest.mark.parametrize("backend", RADIUS_BACKENDS)
@pytest.mark.parametrize("name", list(CLOUDS))
def test_radius_self_search_equals_brute_force(name, backend):
    x, r = CLOUDS[name]
    x = torch.from_numpy(x)
    ref = radius_search(x, r, backend="brute")
    same(radius_search(x, r, backend=backend), ref)
    assert not bool((ref.edge_index[0] == ref.edge_index[1]).any())


@pytest.mark.parametrize("backend", RADIUS_BACKENDS)
@pytest.mark.parametrize("name", ["uniform", "clustered", "duplicates", "lattice_at_exact_spacing"])
def test_bipartite_radius_search_equals_brute_force(name, backend):
    x, r = CLOUDS[name]
    x = torch.from_numpy(x)
    q = x[::3] + 0.01
    same(radius_search(x, r, q, backend=backend), radius_search(x, r, q, backend="brute"))


def test_lattice_neighbors_at_exactly_the_radius_are_included():
    x, r = CLOUDS["lattice_at_exact_spacing"]
    counts = torch.bincount(radius_search(torch.from_numpy(x), r).edge_index[1], minlength=len(x))
    assert counts.max() == 6 and counts.min() == 3  # interior: 6 face neighbors; corners: 3


def test_zero_radius_finds_exact_duplicates_only():
    x, _ = CLOUDS["duplicates"]
    res = radius_search(torch.from_numpy(x), 0.0)
    assert len(res) == 500 * 4 and bool((res.distance == 0).all())


def test_radius_beyond_the_domain_connects_everything():
    x, r = CLOUDS["radius_beyond_domain"]
    assert len(radius_search(torch.from_numpy(x), r)) == 300 * 299
    assert len(radius_search(torch.from_numpy(x), r, loop=True)) == 300 * 300


@pytest.mark.parametrize("backend", RADIUS_BACKENDS + ["brute"])
def test_empty_sets(backend):
    x = torch.rand(10, 3, dtype=torch.float64)
    empty = torch.zeros(0, 3, dtype=torch.float64)
    assert len(radius_search(empty, 0.5, backend=backend)) == 0
    assert len(radius_search(x, 0.5, empty, backend=backend)) == 0
    assert len(radius_search(empty, 0.5, x, backend=backend)) == 0
    assert radius_search(x, 0.5, empty).edge_index.shape == (2, 0)


@pytest.mark.parametrize("backend", RADIUS_BACKENDS)
def test_batches_never_connect_across_samples(backend):
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.random((1200, 3)))
    q = torch.from_numpy(rng.random((700, 3)))
    bx = torch.from_numpy(np.sort(rng.integers(0, 5, 1200)))
    bq = torch.from_numpy(np.sort(rng.integers(1, 6, 700)))  # sample 0 has no queries, sample 5 no points
    kw = dict(batch_points=bx, batch_queries=bq)
    res = radius_search(x, 0.15, q, backend=backend, **kw)
    same(res, radius_search(x, 0.15, q, backend="brute", **kw))
    assert bool((bx[res.edge_index[0]] == bq[res.edge_index[1]]).all())
    # each sample alone gives the same pairs
    for b in range(6):
        xm, qm = bx == b, bq == b
        alone = radius_search(x[xm], 0.15, q[qm], backend=backend)
        sel = (bq[res.edge_index[1]] == b)
        offset_p, offset_q = int(torch.searchsorted(bx, b)), int(torch.searchsorted(bq, b))
        np.testing.assert_array_equal(res.edge_index[:, sel] - torch.tensor([[offset_p], [offset_q]]),
                                      alone.edge_index)


def test_unsorted_batch_is_refused():
    with pytest.raises(ValueError, match="sorted"):
        radius_search(torch.rand(4, 3), 0.1, batch_points=torch.tensor([0, 1, 0, 1]))


def test_results_are_canonically_ordered_and_int64():
    res = radius_search(torch.rand(500, 3, dtype=torch.float64), 0.2)
    assert res.edge_index.dtype == torch.int64
    key = res.edge_index[1] * 500 + res.edge_index[0]
    assert bool((key[1:] > key[:-1]).all())
    off = res.offsets(500)
    assert off.dtype == torch.int64 and int(off[-1]) == len(res)


def test_neighbor_cap_keeps_the_nearest_deterministically():
    x = torch.from_numpy(CLOUDS["duplicates"][0])
    capped = radius_search(x, 0.3, max_neighbors=7)
    full = radius_search(x, 0.3)
    counts = torch.bincount(capped.edge_index[1], minlength=len(x))
    assert int(counts.max()) == 7
    for i in [0, 17, 251]:
        mine = capped.distance[capped.edge_index[1] == i]
        theirs = full.distance[full.edge_index[1] == i]
        assert float(mine.max()) <= float(theirs.sort().values[6])  # the 7 nearest
    same(capped, radius_search(x, 0.3, max_neighbors=7, backend="brute"))


def test_chunk_plan_counts_past_two_to_the_31():
    counts = torch.full((10,), 2**30, dtype=torch.int64)  # 10 * 2^30 pairs in all
    plan = plan_chunks(counts, budget=3 * 2**30)
    assert plan == [(0, 3), (3, 6), (6, 9), (9, 10)]


def test_cell_list_in_small_chunks_gives_the_same_result():
    from geoop.graph.search_backends import cell_list_keys

    x = torch.from_numpy(CLOUDS["uniform"][0])
    b = torch.zeros(len(x), dtype=torch.int64)
    big = torch.sort(cell_list_keys(x, x, 0.1, b, b, 1)).values
    small = torch.sort(cell_list_keys(x, x, 0.1, b, b, 1, budget=1000)).values
    assert torch.equal(big, small)


@pytest.mark.parametrize("name", ["uniform", "clustered", "duplicates", "lattice_at_exact_spacing", "planar"])
def test_knn_equals_brute_force_including_ties(name):
    x = torch.from_numpy(CLOUDS[name][0])
    for k in (1, 6, 12):
        same(knn_search(x, k), knn_search(x, k, backend="brute"))
        q = x[::4] + 0.003
        same(knn_search(x, k, q), knn_search(x, k, q, backend="brute"))


def test_knn_returns_exactly_k_and_fewer_only_in_small_samples():
    x = torch.rand(50, 3, dtype=torch.float64)
    batch = torch.tensor([0] * 45 + [1] * 5)
    res = knn_search(x, 8, batch_points=batch)
    counts = torch.bincount(res.edge_index[1], minlength=50)
    assert counts[:45].eq(8).all() and counts[45:].eq(4).all()
    assert bool((batch[res.edge_index[0]] == batch[res.edge_index[1]]).all())


def test_knn_ties_go_to_the_lower_index():
    x = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [-1.0, 0, 0], [0, 1.0, 0]], dtype=torch.float64)
    res = knn_search(x, 2, torch.zeros(1, 3, dtype=torch.float64))
    assert res.edge_index[0].tolist() == [0, 1]


def test_float32_inputs_work_and_agree_across_backends():
    x = torch.rand(2000, 3)
    same(radius_search(x, 0.08), radius_search(x, 0.08, backend="brute"))
    same(radius_search(x, 0.08, backend="cell_list"), radius_search(x, 0.08, backend="brute"))


def test_mesh_edges_of_a_hex_box():
    g = box_hexes(2, (1.0, 1.0, 1.0))
    ei = mesh_edge_index(g)
    assert ei.shape == (2, 2 * 54)  # a 2x2x2 hex grid has 3*3*3*... = 54 unique edges
    assert bool((ei[1][1:] >= ei[1][:-1]).all())
    d = np.linalg.norm(g.points[ei[0]] - g.points[ei[1]], axis=1)
    np.testing.assert_allclose(d, 0.5)


def test_graph_builders_match_the_search_functions():
    x = torch.rand(300, 3, dtype=torch.float64)
    y = torch.rand(100, 3, dtype=torch.float64)
    same(radius_graph(x, 0.2), radius_search(x, 0.2))
    same(knn_graph(x, 5), knn_search(x, 5))
    same(bipartite_radius_graph(x, y, 0.2), radius_search(x, 0.2, y))
    same(bipartite_knn_graph(x, y, 5), knn_search(x, 5, y))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_lattice_search_gives_the_radius_graph_of_its_nodes(dtype):
    """The arithmetic search from a latent grid's nodes equals the tree's graph bit for bit (pairs, order and
    distances), at radii that put queries on nodes exactly at the radius, for queries inside and outside the
    grid, and on a rectilinear lattice of uneven spacing."""
    from geoop.graph.grids import latent_grids
    from geoop.graph.neighbors import lattice_radius_search

    torch.manual_seed(0)
    grid = latent_grids(torch.rand(400, 3, dtype=dtype) * torch.tensor([2.0, 1.0, 0.5], dtype=dtype), None, 13,
                        bounds="box")
    axes = grid.axes()
    assert torch.equal(torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3), grid.points)
    queries = torch.cat([torch.rand(3000, 3, dtype=dtype) * 3 - 0.5, grid.points[::5]])
    spacing = float((grid.upper - grid.lower)[0, 2] / 12)  # the finest axis: nodes at exactly r
    for r in (0.02, spacing, 1.5 * spacing, 0.4):
        same(lattice_radius_search(axes, r, queries), radius_search(grid.points, r, queries))
    uneven = [torch.tensor([0.0, 0.1, 0.15, 0.7, 1.0], dtype=dtype), torch.tensor([-1.0, 0.0, 2.0], dtype=dtype)]
    nodes = torch.stack(torch.meshgrid(*uneven, indexing="ij"), dim=-1).reshape(-1, 2)
    flat = torch.rand(500, 2, dtype=dtype) * 3 - 1
    same(lattice_radius_search(uneven, 0.5, flat), radius_search(nodes, 0.5, flat))
    far = [a + 1000 for a in axes]  # coordinates far from the origin: the window's bounds round, the graph does not
    nodes = torch.stack(torch.meshgrid(*far, indexing="ij"), dim=-1).reshape(-1, 3)
    same(lattice_radius_search(far, spacing, nodes[::3]), radius_search(nodes, spacing, nodes[::3]))
    graph, _ = bipartite_graph(grid.points, queries, 0.3, source_axes=axes)
    tree, _ = bipartite_graph(grid.points, queries, 0.3)
    same(graph, tree)


def test_a_filled_bipartite_graph_is_the_radius_graph_plus_each_empty_targets_nearest_source():
    x = torch.rand(300, 3, dtype=torch.float64)
    y = torch.cat([torch.rand(200, 3, dtype=torch.float64), 3 + torch.rand(50, 3, dtype=torch.float64)])[
        torch.randperm(250)]  # a fifth of the targets far away, among the others
    graph, empty = bipartite_graph(x, y, 0.15)
    radius = radius_search(x, 0.15, y)
    far = torch.bincount(radius.edge_index[1], minlength=250) == 0
    assert empty == int(far.sum()) >= 50
    nearest = knn_search(x, 1, y)
    src = torch.cat([radius.edge_index[0], nearest.edge_index[0][far]])
    dst = torch.cat([radius.edge_index[1], nearest.edge_index[1][far]])
    order = torch.argsort(dst * 300 + src)
    assert torch.equal(graph.edge_index, torch.stack([src[order], dst[order]]))
    assert torch.equal(graph.distance, torch.cat([radius.distance, nearest.distance[far]])[order])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cell_list_on_cuda_equals_cpu():
    x = torch.from_numpy(CLOUDS["clustered"][0])
    gpu = radius_search(x.cuda(), 0.01, backend="cell_list")
    cpu = radius_search(x, 0.01, backend="brute")
    assert torch.equal(gpu.edge_index.cpu(), cpu.edge_index)


def test_a_large_query_set_searched_in_threads_gives_the_single_thread_graph():
    """Query sets above PARALLEL_QUERIES are split over the torch threads; the graph must not change."""
    rng = np.random.default_rng(3)
    points = torch.from_numpy(rng.random((3000, 3)))
    queries = torch.from_numpy(rng.random((PARALLEL_QUERIES + 5000, 3)))
    before = torch.get_num_threads()
    try:
        graphs = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            graphs.append(radius_search(points, 0.08, queries, backend="kdtree"))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(graphs[0].edge_index, graphs[1].edge_index) and graphs[0].edge_index.shape[1] > 50_000
