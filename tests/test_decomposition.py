"""K-D tree decomposition, its transfers between points and leaf grids, and the KD-FNO built on them."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from geoop.decomposition import (KDTreeDecomposition, grid_to_point_matrix, leaf_grids, point_to_grid_matrix,
                                 uniformity_kl)
from geoop import Geometry
from geoop.decomposition.kdtree import histogram_shape
from geoop.errors import NotFittedError
from geoop.models import KDFNO, KDTransfers
from tests.conftest import antiderivative_samples, train_and_test


def clustered_cloud(seed: int = 0, n: int = 3000) -> np.ndarray:
    """A dense Gaussian cluster over a sparse uniform background in the unit square, with its corners."""
    rng = np.random.default_rng(seed)
    return np.concatenate([[[0, 0], [1, 0], [0, 1], [1, 1]], rng.normal([0.3, 0.3], 0.05, (n, 2)).clip(0, 1),
                           rng.random((n // 3, 2))])


def local_wave(x: np.ndarray) -> np.ndarray:
    """Fine oscillations where the cluster is, nearly zero elsewhere."""
    return np.sin(60 * x[:, 0]) * np.sin(60 * x[:, 1]) * np.exp(-((x - 0.3) ** 2).sum(1) / (2 * 0.05**2))


def round_trip_error(tree: KDTreeDecomposition, oversample: float, points: np.ndarray,
                     overlap: float = 0.25) -> tuple[float, int]:
    grids = leaf_grids(tree, oversample, overlap)
    on_grid = point_to_grid_matrix(points, grids.nodes())[0] @ local_wave(points)
    back = grid_to_point_matrix(grids, points) @ on_grid
    error = np.linalg.norm(back - local_wave(points)) / np.linalg.norm(local_wave(points))
    return float(error), grids.n_nodes


def annulus_mesh(inner: float = 0.3, outer: float = 1.0, rings: int = 8, per_ring: int = 48) -> Geometry:
    """A ring-shaped 2D mesh (a disk with a hole): quadrilaterals of a polar grid split into triangles."""
    r = np.linspace(inner, outer, rings + 1)
    t = 2 * np.pi * np.arange(per_ring) / per_ring
    points = (r[:, None, None] * np.stack([np.cos(t), np.sin(t)], -1)[None]).reshape(-1, 2)
    i, j = np.meshgrid(np.arange(rings), np.arange(per_ring), indexing="ij")
    a, b = i * per_ring + j, i * per_ring + (j + 1) % per_ring
    c, d = a + per_ring, b + per_ring
    triangles = np.concatenate([np.stack([a, b, d], -1).reshape(-1, 3), np.stack([a, d, c], -1).reshape(-1, 3)])
    return Geometry(points, {"triangle": triangles})


@pytest.fixture(scope="module")
def cloud() -> np.ndarray:
    return clustered_cloud()


@pytest.fixture(scope="module")
def tree(cloud) -> KDTreeDecomposition:
    return KDTreeDecomposition(n_subdomains=8, n_blocks=8).fit(cloud)


def test_leaves_partition_the_points_and_contain_them(tree, cloud):
    leaf = tree.assign(cloud)
    assert tree.n_leaves == 8
    np.testing.assert_array_equal(np.bincount(leaf, minlength=8), tree.leaf_count_)
    assert tree.leaf_count_.sum() == len(cloud)
    assert np.all(cloud >= tree.leaf_lower_[leaf]) and np.all(cloud <= tree.leaf_upper_[leaf])


def test_a_split_never_raises_the_kl_measured_on_the_parents_cells(cloud):
    rng = np.random.default_rng(1)
    for points in (cloud, rng.random((500, 2)) ** 3, rng.normal(size=(800, 3))):
        tree = KDTreeDecomposition(n_subdomains=2, n_blocks=8).fit(points)
        lo, hi = points.min(0), points.max(0)
        shape = histogram_shape(hi - lo, 8)
        parent = uniformity_kl(points, 8)
        leaf = tree.assign(points)
        children = 0.0
        for k in range(2):
            part = points[leaf == k]
            # the child's box in the parent's cells: the parent's box cut at the threshold
            c_lo, c_hi = lo.copy(), hi.copy()
            axis, b = tree.node_axis_[0], tree.node_threshold_[0]
            (c_hi if k == 0 else c_lo)[axis] = b
            cells = shape.copy()
            m = round((b - lo[axis]) / (hi[axis] - lo[axis]) * shape[axis])
            cells[axis] = m if k == 0 else shape[axis] - m
            children += len(part) / len(points) * uniformity_kl(part, 8, c_lo, c_hi, cells)
        assert children <= parent + 1e-12


@pytest.mark.parametrize("overlap", [0.0, 0.25])
def test_blended_grids_reproduce_linear_functions_at_points_and_queries(tree, cloud, overlap):
    grids = leaf_grids(tree, 1.5, overlap)
    f = lambda x: 1 + 2 * x[:, 0] - 3 * x[:, 1]  # noqa: E731
    on_grid = point_to_grid_matrix(cloud, grids.nodes())[0] @ f(cloud)
    queries = np.random.default_rng(2).random((400, 2)) * 1.2 - 0.1  # some beyond the root box
    for q in (cloud, queries):
        read = grid_to_point_matrix(grids, q)
        np.testing.assert_allclose(read.sum(1).A1, 1.0, atol=1e-12)  # a partition of unity
        np.testing.assert_allclose(read @ on_grid, f(q), atol=1e-12)


def test_round_trip_error_falls_with_oversampling_and_beats_one_global_grid(tree, cloud):
    errors = []
    single = KDTreeDecomposition(n_subdomains=1).fit(cloud)
    for oversample in (0.5, 1.0, 2.0, 4.0):
        err, nodes = round_trip_error(tree, oversample, cloud)
        err_single, _ = round_trip_error(single, nodes / len(cloud), cloud)  # the same number of grid nodes
        errors.append(err)
        assert err < 0.6 * err_single, (oversample, err, err_single)
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False)), errors
    # where a fine leaf reaches into a coarse one its grid is read: the overlap helps, not hurts
    assert round_trip_error(tree, 1.5, cloud)[0] < 0.8 * round_trip_error(tree, 1.5, cloud, overlap=0.0)[0]


@pytest.mark.parametrize("oversample", [0.5, 1.5, 3.0])
def test_total_grid_nodes_follow_oversample_and_leaves_get_their_own_sizes(oversample):
    samples = [clustered_cloud(seed, n) for seed, n in ((6, 2000), (7, 2600), (8, 2300))]
    index = np.repeat(np.arange(3), [len(s) for s in samples])
    tree = KDTreeDecomposition(n_subdomains=8).fit(np.concatenate(samples), 3, sample_index=index)
    for overlap in (0.0, 0.25):
        grids = leaf_grids(tree, oversample, overlap)
        per_sample = len(index) / 3
        assert abs(grids.n_nodes / (oversample * per_sample) - 1) < 0.1, (grids.n_nodes, oversample * per_sample)
        spacing = np.prod((grids.upper - grids.lower) / (grids.shapes - 1), axis=1) ** 0.5
        density = tree.leaf_count_ / np.prod(grids.core_upper - grids.core_lower, axis=1)
        dense, sparse = np.argmax(density), np.argmin(density)
        assert spacing[dense] < 0.5 * spacing[sparse]  # dense leaves get fine grids, sparse ones coarse grids
    # the cores tile the root box: every point is in exactly one
    inside = np.all((samples[0][:, None] >= grids.core_lower) & (samples[0][:, None] <= grids.core_upper), axis=2)
    assert inside.any(1).all()


def test_grid_nodes_in_a_hole_take_nothing_from_across_it():
    """In the mesh's own cells a node inside the domain is interpolated from the corners of the cell holding
    it and a node in the hole copies its nearest point; the points' Delaunay triangulation instead bridges the
    hole and blends its opposite sides."""
    ring = annulus_mesh()
    nodes = leaf_grids(KDTreeDecomposition(n_subdomains=1).fit(ring.points), 2.0).nodes()
    longest_edge = np.linalg.norm(ring.points[ring.simplices] - np.roll(ring.points[ring.simplices], 1, 1),
                                  axis=2).max()

    def spread(matrix) -> np.ndarray:  # (G,) how far apart the points are that each node blends
        coo = matrix.tocoo()
        far = np.zeros(matrix.shape[0])
        for a, b in zip(coo.row, coo.col, strict=True):
            far[a] = max(far[a], np.linalg.norm(ring.points[matrix.indices[matrix.indptr[a]:matrix.indptr[a + 1]]]
                                                - ring.points[b], axis=1).max())
        return far

    matrix, inside = point_to_grid_matrix(ring.points, nodes, ring.simplices)
    radius = np.linalg.norm(nodes, axis=1)
    in_hole = radius < 0.3 - 1e-9
    assert in_hole.sum() > 10 and not inside[in_hole].any()
    assert inside[(radius > 0.3 + 0.05) & (radius < 1 - 0.05)].all()
    assert (np.diff(matrix.indptr)[~inside] == 1).all()  # one nearest point, never a blend
    assert spread(matrix)[inside].max() <= longest_edge + 1e-12  # the corners of one cell
    bridged, _ = point_to_grid_matrix(ring.points, nodes)
    assert spread(bridged)[in_hole].max() > 0.3  # Delaunay blends points across the hole
    f = ring.points[:, 0] ** 2  # exact where linear: each in-domain node reads its own cell
    assert np.abs((matrix @ f)[inside] - nodes[inside, 0] ** 2).max() < longest_edge ** 2


def test_saved_and_loaded_tree_gives_identical_transfers(tree, cloud, tmp_path):
    loaded = KDTreeDecomposition.load(tree.save(tmp_path / "tree.json"))
    queries = np.random.default_rng(3).random((200, 2)) * 1.4 - 0.2
    a, b = leaf_grids(tree), leaf_grids(loaded)
    assert (grid_to_point_matrix(a, queries) != grid_to_point_matrix(b, queries)).nnz == 0
    np.testing.assert_array_equal(a.nodes(), b.nodes())
    assert loaded.plot(tmp_path / "tree.png", cloud).stat().st_size > 10_000


def test_unfitted_tree_says_so():
    with pytest.raises(NotFittedError, match="fit"):
        KDTreeDecomposition().assign(np.zeros((1, 2)))


@pytest.mark.parametrize("global_resolution", [0, 12])
def test_kdfno_batches_geometries_and_backpropagates(global_resolution):
    clouds = [clustered_cloud(seed, n) for seed, n in ((4, 500), (5, 350))]
    tree = KDTreeDecomposition(n_subdomains=6).fit(np.concatenate(clouds))
    torch.manual_seed(0)
    model = KDFNO(tree, 1, 2, hidden=8, modes=6, n_layers=2, global_resolution=global_resolution, use_sdf=False)
    transfers = [model.prepare(c) for c in clouds]
    fields = [torch.tensor(np.sin(5 * c[:, :1]), dtype=torch.float32) for c in clouds]
    together = model(torch.cat(fields), KDTransfers.collate(transfers))
    alone = torch.cat([model(f, t) for f, t in zip(fields, transfers, strict=True)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)
    together.square().mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_a_small_kdfno_learns_the_antiderivative_operator():
    samples = antiderivative_samples()
    torch.manual_seed(0)
    tree = KDTreeDecomposition(n_subdomains=4).fit(np.concatenate([s[0].numpy() for s in samples[:64]]))
    model = KDFNO(tree, 1, 1, oversample=0.05, hidden=24, modes=8, n_layers=3, use_sdf=False)
    transfers = [model.prepare(s[0].numpy()) for s in samples]
    test = train_and_test(model, samples, transfers, KDTransfers.collate, epochs=15)
    assert test < 0.25, test  # ~0.15 measured; predicting zero scores 1.0


def test_mirror_symmetries_commute_with_the_grid_transfers():
    """The premise of `symmetries`: on a box the family maps onto itself, mirroring the points (values kept)
    mirrors the gridded values, and the read-out at mirrored queries reads the mirrored grid. So flipping the
    gridded inputs and flipping the output back is the network seeing the mirrored problem."""
    from geoop.models.kdfno import _apply
    from tests.conftest import disk_mesh

    g = disk_mesh(radius=1.0, rings=12)
    rng = np.random.default_rng(0)
    f = torch.tensor(rng.normal(size=(g.n_points, 1)), dtype=torch.float32)
    tree = KDTreeDecomposition(n_subdomains=1).fit(g.points, n_samples=1)
    model = KDFNO(tree, 1, 1, oversample=1.0, hidden=8, modes=4, n_layers=1, use_sdf=False,
                  symmetries=("flip_x", "flip_y", "transpose"))
    shape = model.grids.leaf_shape(0)
    points = np.array(g.points)
    base = model.prepare(points)
    for ops, mirror in ((["flip_x"], np.array([[-1, 0], [0, 1]])), (["transpose"], np.array([[0, 1], [1, 0]]))):
        moved = model.prepare(points @ mirror.T)
        grid = torch.sparse.mm(base.to_grid, f).reshape(1, 1, *shape)
        mirrored = torch.sparse.mm(moved.to_grid, f).reshape(1, 1, *shape)
        torch.testing.assert_close(mirrored, _apply(grid, ops), atol=1e-5, rtol=1e-5)
    model.eval()
    first, again = model(f, base), model(f, base)
    assert torch.equal(first, again)  # no augmentation outside training
    model.train()
    model(f, base).square().mean().backward()
    with pytest.raises(ValueError, match="one grid"):
        KDFNO(KDTreeDecomposition(n_subdomains=4).fit(g.points, n_samples=1), 1, 1, symmetries=("flip_x",))


def test_every_sample_keeps_the_minimum_in_every_leaf():
    """The minimum leaf size holds per sample, not for the union: a sample that is sparse where the others
    are dense still gets at least `min_points` in each leaf."""
    rng = np.random.default_rng(0)
    dense = [np.concatenate([rng.uniform(0, 1, (400, 2)), rng.uniform(0, 0.2, (400, 2))]) for _ in range(3)]
    sparse = rng.uniform(0, 1, (120, 2))  # few points near the corner the others crowd
    samples = dense + [sparse]
    index = np.repeat(np.arange(4), [len(s) for s in samples])
    tree = KDTreeDecomposition(n_subdomains=16, min_points=12).fit(np.concatenate(samples), 4, sample_index=index)
    counts = np.stack([np.bincount(tree.assign(s), minlength=tree.n_leaves) for s in samples])
    assert tree.n_leaves > 4 and counts.min() >= 12
    union = KDTreeDecomposition(n_subdomains=16, min_points=12).fit(np.concatenate(samples), 4)
    per_sample = np.stack([np.bincount(union.assign(s), minlength=union.n_leaves) for s in samples])
    assert per_sample.min() < 12  # counting the union's points let a leaf starve the sparse sample


def test_an_untrained_kdfno_reads_out_continuously_across_the_cuts():
    """Each leaf runs the FNO on its own grid, so two leaves disagree where they meet; the blended read-out
    must still be continuous: along a line crossing the cuts, the largest step between neighbouring queries
    shrinks with the step length (a jump would not). Without overlap the read-out jumps at the cuts."""
    cloud = clustered_cloud(9, 1500)
    tree = KDTreeDecomposition(n_subdomains=6).fit(cloud)
    assert {0, 1} <= set(tree.node_axis_[tree.node_leaf_ < 0])  # cuts across both axes
    f = torch.tensor(np.sin(4 * cloud[:, :1]) + cloud[:, 1:], dtype=torch.float32)

    def largest_steps(overlap: float) -> list[float]:
        torch.manual_seed(0)
        model = KDFNO(tree, 1, 1, overlap=overlap, hidden=8, modes=6, n_layers=2, use_sdf=False).eval()
        steps = []
        for n in (500, 4000):
            t = np.linspace(0.02, 0.98, n)
            line = np.stack([t, 0.15 + 0.7 * t], 1)  # a diagonal through the leaves
            with torch.no_grad():
                out = model(f, model.prepare(cloud, queries=line))[:, 0].numpy()
            steps.append(np.abs(np.diff(out)).max())
        return steps

    coarse, fine = largest_steps(0.25)
    assert fine < 0.25 * coarse, (coarse, fine)  # 8x shorter steps: ~1/8 of the largest change
    coarse, fine = largest_steps(0.0)
    assert fine > 0.5 * coarse, (coarse, fine)  # a seam: the jump stays whatever the step


def test_evaluation_averaged_over_the_mirrors_is_equivariant():
    """`mean_g g^-1 F(g x)` over the 8 symmetries of a square commutes with each of them for any network F
    (an inverse applied in the wrong order breaks it); an evaluating KDFNO answers with that mean, training
    and `evaluation("single")` with one pass."""
    from geoop.layers.fno import FNO
    from geoop.models.kdfno import _apply, group_elements, group_mean
    from tests.conftest import disk_mesh

    torch.manual_seed(0)
    group = group_elements(("flip_x", "flip_y", "transpose"))
    assert len({tuple(_apply(torch.arange(9.0).reshape(1, 1, 3, 3), g).flatten().tolist()) for g in group}) == 8
    fno = FNO(2, 1, (4, 4), hidden=8, n_layers=2, padding=0.1)
    x = torch.randn(2, 2, 12, 12)
    for h in (["flip_x"], ["transpose"], ["flip_y", "transpose"]):
        torch.testing.assert_close(group_mean(fno, _apply(x, h), group), _apply(group_mean(fno, x, group), h),
                                   atol=1e-5, rtol=1e-5)
    g = disk_mesh(radius=1.0, rings=8)
    model = KDFNO(KDTreeDecomposition(n_subdomains=1).fit(g.points, n_samples=1), 1, 1, oversample=1.0, hidden=8,
                  modes=4, n_layers=1, use_sdf=False, symmetries=("flip_x", "flip_y", "transpose")).eval()
    transfers = model.prepare(np.array(g.points))
    f = torch.randn(g.n_points, 1)
    with torch.no_grad():
        averaged = model(f, transfers)
        with model.evaluation("single"):
            one = model(f, transfers)
        assert model.symmetry_mean and model.average_symmetries
        model.average_symmetries = False
        torch.testing.assert_close(model(f, transfers), one)
    assert (averaged - one).abs().max() > 1e-4  # an untrained network is not invariant by itself


def test_a_nearly_square_box_gets_one_square_grid_for_the_transpose_and_its_node_coordinates_follow():
    points = np.random.default_rng(0).uniform(-1, 1, (500, 2)) * [1.0, 0.97]
    tree = KDTreeDecomposition(n_subdomains=1).fit(points, n_samples=1)
    model = KDFNO(tree, 1, 1, oversample=1.0, hidden=8, modes=4, n_layers=1, use_sdf=False, symmetries=("transpose",))
    shape = model.grids.leaf_shape(0)
    assert shape[0] == shape[1] and len(model.node_coords) == np.prod(shape)
    with torch.no_grad():
        assert model(torch.rand(500, 1), model.prepare(points)).shape == (500, 1)


@pytest.mark.parametrize("dim", [2, 3])
def test_every_node_inside_the_mesh_is_located_in_a_cell_that_holds_it(dim):
    """Nearest-centroid candidates first, the radius search for the rest: every node inside the mesh gets a
    cell whose barycentric coordinates rebuild it; nodes outside get none. A sliver-graded 2D mesh (cells
    squeezed 50x along x near one side) puts nodes in cells whose centroids are not the nearest."""
    from geoop.decomposition.transfer import locate_in_cells
    from tests.conftest import box_tets, disk_mesh

    g = disk_mesh(radius=1.0, rings=10) if dim == 2 else box_tets(4)
    points = g.points.copy()
    if dim == 2:  # grade towards x = -1: x -> -1 + (x + 1)^6 / 2^5 packs thin cells there
        points[:, 0] = -1 + (points[:, 0] + 1) ** 6 / 2**5
    cells = g.simplices
    rng = np.random.default_rng(0)
    lo, hi = points.min(0), points.max(0)
    nodes = lo - 0.1 + (hi - lo + 0.2) * rng.random((3000, dim))
    # the truth, by brute force over every cell
    verts = points[cells]
    frame = np.swapaxes(verts[:, :dim] - verts[:, dim:], 1, 2)
    lam = np.einsum("kij,nkj->nki", np.linalg.inv(frame), nodes[:, None, :] - verts[None, :, dim])
    inside_any = ((lam >= -1e-9).all(2) & (lam.sum(2) <= 1 + 1e-9)).any(1)
    assert inside_any.sum() > 1000 and (~inside_any).sum() > 100
    for nearest in (8, 1):  # one candidate leaves most of the work to the radius search
        found, bary = locate_in_cells(points, cells, nodes, chunk=700, nearest=nearest)
        np.testing.assert_array_equal(found >= 0, inside_any)
        hit = found >= 0
        rebuilt = np.einsum("nk,nkd->nd", bary[hit], points[cells[found[hit]]])
        np.testing.assert_allclose(rebuilt, nodes[hit], atol=1e-9)
        assert (bary[hit] >= -1e-9).all()
