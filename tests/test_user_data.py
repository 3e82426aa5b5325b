"""A user's own data, end to end: tables as numpy and spreadsheets write them, output in the input's order,
chosen test designs, point clouds and boundary masks on import, and the mistakes that used to pass silently
(no test split, a bare cloud where the model needs a signed distance, subsampled mesh graphs)."""
from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import geoop
from geoop import Geometry
from geoop.cli import build_parser, main
from geoop.data import read_manifest
from geoop.data.importer import import_folder
from geoop.errors import FieldError, GeometryError, GeoopError
from geoop.graph.graphs import mesh_edge_index, subgraph_edges
from geoop.training import load_config, train
from geoop.workflow.predict import predict_file
from geoop.data.read_options import ReadOptions
from tests.conftest import disk_mesh

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.resolution=12", "model.hidden=12", "model.modes=4", "model.n_layers=1", "model.in_gno_hidden=[16]",
        "model.out_gno_hidden=[16]", "model.projection_hidden=16", "train.batch_size=4", "train.lr=3e-3",
        "train.progress=false", "threads=1", "train.epochs=2"]


def design(i: int) -> Geometry:
    """Design i: a disk of radius 0.8..1.2 with a diffusivity k and a response u (a smooth function of both),
    boundary data g on its rim (a 0/1 mask `rim`)."""
    rng = np.random.default_rng(i)
    g = disk_mesh(radius=rng.uniform(0.8, 1.2), rings=6)
    x, y = g.points.T
    k = 1 + 0.5 * np.sin(rng.uniform(1, 3) * x)
    rim = g.boundary_mask.astype(np.float64)
    return g.with_point_data(k=k, u=k * (1 - x**2 - y**2) + 0.3 * y, g=np.where(rim > 0, 0.3 * y, 0.0), rim=rim)


@pytest.fixture(scope="module")
def designs(tmp_path_factory) -> Path:
    """A folder of solver output as a user has it: 14 VTU designs, 4 of them held out in `held_out/`."""
    root = tmp_path_factory.mktemp("designs") / "results"
    (root / "held_out").mkdir(parents=True)
    for i in range(14):
        design(i).save(root / ("held_out" if i >= 10 else "") / f"design_{i:02d}.vtu")
    return root


@pytest.fixture(scope="module")
def imported(designs) -> Path:
    out = designs.parent / "data"
    import_folder(designs, out, ["k", "g"], ["u"], masks={"g": "rim"}, test_from=designs / "held_out",
                  progress=False)
    return out


@pytest.fixture(scope="module")
def model(imported) -> Path:
    """A tiny GINO (it feeds the signed distance to its network) trained on the imported designs."""
    out = imported.parent / "run"
    train(load_config(None, TINY + [f"data.root={imported}", f"out={out}"]))
    return out / "model.safetensors"


def test_numpy_and_spreadsheet_tables_load_without_a_header(tmp_path):
    rng = np.random.default_rng(0)
    xyz, p = rng.random((40, 3)), rng.random(40)
    np.savetxt(tmp_path / "cloud.csv", xyz, delimiter=",")                    # np.savetxt, no header
    np.savetxt(tmp_path / "fields.csv", np.c_[xyz, p, 2 * p], delimiter=";")  # semicolons
    np.savetxt(tmp_path / "fields.txt", np.c_[xyz, p])                       # whitespace
    with open(tmp_path / "excel.csv", "w") as f:                             # decimal commas, a header
        f.write("x;y;z;pressure\n")
        f.writelines(";".join(f"{v:.9f}".replace(".", ",") for v in row) + "\n" for row in np.c_[xyz, p])
    g = geoop.load(tmp_path / "cloud.csv", sort=False)
    assert g.kind == "points" and np.array_equal(g.points, xyz)
    g = geoop.load(tmp_path / "fields.csv", sort=False)
    assert sorted(g.point_data) == ["field_0", "field_1"] and np.allclose(g.point_data["field_1"], 2 * p)
    g = geoop.load(tmp_path / "fields.txt", sort=False, columns="x,y,z,p")
    assert list(g.point_data) == ["p"] and np.array_equal(g.point_data["p"], p)
    assert np.allclose(geoop.load(tmp_path / "excel.csv", sort=False).point_data["pressure"], p, atol=1e-9)
    np.savetxt(tmp_path / "one.csv", p)
    with pytest.raises(FieldError, match="--columns"):  # one column is truly ambiguous: the fix is named
        geoop.load(tmp_path / "one.csv")
    with pytest.raises(FieldError, match="3 column names .* for 4 columns"):
        geoop.load(tmp_path / "fields.txt", columns="x,y,p")
    np.save(tmp_path / "table.npy", np.c_[xyz, p, p, p, p])  # 7 columns: not points + normals
    assert sorted(geoop.load(tmp_path / "table.npy").point_data) == [f"field_{i}" for i in range(4)]


def test_predictions_come_back_in_the_order_of_the_input_file(model, designs, tmp_path):
    """A shuffled copy of a design, written as VTU and as a headerless CSV: the output rows are the input rows,
    and the predictions are those of the unshuffled design, permuted."""
    g = geoop.load(designs / "held_out" / "design_12.vtu", sort=False)
    order = np.random.default_rng(1).permutation(g.n_points)
    shuffled = g.permuted(order)
    shuffled.save(tmp_path / "shuffled.vtu")
    reference, *_ = predict_file(model, designs / "held_out" / "design_12.vtu", tmp_path / "ref.vtu")
    made = predict_file(model, tmp_path / "shuffled.vtu", tmp_path / "pred.vtu")
    written, picture, errors = made.written, made.picture, made.errors
    assert made.forces is None  # a model of no body
    assert {"u_lo", "u_hi", "u_scale"} <= set(geoop.load(written).point_data) and made.trust.available
    back = geoop.load(written, sort=False)
    assert np.array_equal(back.points, shuffled.points)
    assert all(np.array_equal(back.cells[t], shuffled.cells[t]) for t in shuffled.cells)
    assert np.array_equal(back.point_data["k"], shuffled.point_data["k"])          # the user's fields stay
    assert np.array_equal(back.point_data["u_true"], shuffled.point_data["u"])     # the truth is kept beside
    np.testing.assert_allclose(back.point_data["u"], reference.point_data["u"][order], rtol=1e-4, atol=1e-5)
    assert errors["u"] == pytest.approx(np.linalg.norm(back.point_data["u_error"]) / np.linalg.norm(
        shuffled.point_data["u"]), rel=1e-6) and picture.is_file()
    # the same design as a numpy-written table (x, y, k, g, rim: no header), and as a --query file
    table = np.c_[shuffled.points, shuffled.point_data["k"], shuffled.point_data["g"], shuffled.point_data["rim"]]
    np.savetxt(tmp_path / "queries.csv", shuffled.points[::-1], delimiter=",")
    out = predict_file(model, tmp_path / "shuffled.vtu", tmp_path / "at_queries.vtu", query=tmp_path / "queries.csv")
    np.testing.assert_allclose(out[0].points, shuffled.points[::-1])
    np.testing.assert_allclose(out[0].point_data["u"], back.point_data["u"][::-1], rtol=1e-4, atol=1e-5)
    np.savetxt(tmp_path / "design.txt", table)
    cloud = predict_file(model, tmp_path / "design.txt", tmp_path / "cloud.vtu",
                         read=ReadOptions(columns="x,y,k,g,rim"), surface=tmp_path / "shuffled.vtu")[0]
    assert np.array_equal(cloud.points, shuffled.points)


def test_a_bare_cloud_is_refused_where_the_model_needs_a_signed_distance(model, designs, tmp_path):
    g = geoop.load(designs / "held_out" / "design_11.vtu", sort=False)
    Geometry(g.points, point_data=g.point_data).save(tmp_path / "cloud.npz")
    with pytest.raises(GeometryError, match="(?s)signed distance.*--surface"):
        predict_file(model, tmp_path / "cloud.npz", tmp_path / "p.vtu")
    with_surface = predict_file(model, tmp_path / "cloud.npz", tmp_path / "p.vtu",
                                surface=designs / "held_out" / "design_11.vtu")[0]
    assert with_surface.point_data["u"].shape == (g.n_points,) and np.isfinite(with_surface.point_data["u"]).all()


def test_import_holds_out_the_chosen_designs_and_keeps_boundary_masks(imported, designs):
    m = read_manifest(imported)
    source = {r["index"]: Path(r["source_file"]).name for r in m.samples}
    assert sorted(source[i] for i in m.splits["test"]) == [f"design_{i}.vtu" for i in range(10, 14)]
    assert len(m.splits["train"]) + len(m.splits["val"]) == 10 and m.splits["val"]
    assert m.fields["inputs"]["g"]["mask"] == "rim"
    z = np.load(imported / m.samples[0]["file"])
    assert set(np.unique(z["point_data:rim"])) == {0.0, 1.0}
    with pytest.raises(FieldError, match="values other than 0 and 1"):
        import_folder(designs, designs.parent / "bad", ["k", "g"], ["u"], masks={"g": "k"}, progress=False)


def test_a_split_file_and_fractions_decide_the_splits(designs, tmp_path):
    names = sorted(p.name for p in designs.rglob("*.vtu"))
    table = {"train": names[:9], "val": names[9:11], "test": names[11:]}
    (tmp_path / "splits.json").write_text(json.dumps(table))
    m = import_folder(designs, tmp_path / "a", ["k"], ["u"], split_file=tmp_path / "splits.json", progress=False)
    source = {r["index"]: Path(r["source_file"]).name for r in m.samples}
    assert {k: sorted(source[i] for i in v) for k, v in m.splits.items()} == table
    m = import_folder(designs, tmp_path / "b", ["k"], ["u"], fractions=(0.5, 0.5, 0.0), progress=False)
    assert len(m.splits["train"]) == 7 and len(m.splits["val"]) == 7 and m.splits["test"] == []
    (tmp_path / "partial.json").write_text(json.dumps({"train": names[:3], "test": ["nope.vtu"]}))
    with pytest.raises(GeoopError, match="'nope.vtu', which is no sample"):
        import_folder(designs, tmp_path / "c", ["k"], ["u"], split_file=tmp_path / "partial.json", progress=False)
    assert not (tmp_path / "c" / "manifest.json").exists()
    assert main(["data", "import", str(designs), "--out", str(tmp_path / "d"), "--targets", "u",
                 "--fractions", "0.8,0.3,0"]) == 2  # fractions that do not sum to 1: a message
    assert main(["data", "import", str(designs), "--out", str(tmp_path / "e"), "--targets", "u",
                 "--time", "last"]) == 2  # so is a time that is not a number


def test_point_clouds_with_fields_import_and_train(tmp_path):
    """CSV point clouds (numpy-written, no header) named by --columns become a dataset a model learns from."""
    rng = np.random.default_rng(0)
    for i in range(8):
        xyz = rng.uniform(-1, 1, (150, 3))
        a = rng.uniform(0.5, 2)
        np.savetxt(tmp_path / f"cloud_{i}.csv", np.c_[xyz, np.full(150, a), a * xyz[:, 0] ** 2], delimiter=",")
    assert main(["data", "import", str(tmp_path), "--out", str(tmp_path / "data"), "--columns", "x,y,z,a,p",
                 "--inputs", "a", "--targets", "p"]) == 0
    m = read_manifest(tmp_path / "data")
    assert m.dim == 3 and len(m.samples) == 8
    run = train(load_config(None, ["train.progress=false", "threads=1", "train.epochs=2", "model.name=transolver",
                                   "model.hidden=16", "model.layers=1", "model.heads=2", "model.slices=8",
                                   f"data.root={tmp_path / 'data'}",
                                   f"out={tmp_path / 'run'}"]))
    assert run["test"]["samples"] == len(m.splits["test"])


def test_no_test_split_says_so_instead_of_scoring_the_training_split(designs, tmp_path):
    import_folder(designs, tmp_path / "data", ["k"], ["u"], fractions=(0.8, 0.2, 0.0), progress=False)
    with pytest.warns(UserWarning, match="no test split"):
        run = train(load_config(None, TINY + [f"data.root={tmp_path / 'data'}", f"out={tmp_path / 'run'}",
                                              "train.epochs=1"]))
    assert run["test"] is None and not (tmp_path / "run" / "test_metrics.json").exists()
    with pytest.raises(GeoopError, match="'test' split of this dataset is empty"):
        from geoop.training.run import evaluate_checkpoint

        evaluate_checkpoint(tmp_path / "run" / "model.safetensors", tmp_path / "data", "test")


def test_subsampled_mesh_graphs_follow_the_points(imported, tmp_path):
    """data.subsample with the mesh-edge models: the edges are carried onto the kept points (and stay
    connected where the mesh was), instead of indexing the full mesh."""
    g = disk_mesh(rings=10)
    edges = mesh_edge_index(g)
    keep = torch.from_numpy(np.sort(np.random.default_rng(0).permutation(g.n_points)[: g.n_points // 2]))
    sub = subgraph_edges(edges, keep, g.n_points)
    assert int(sub.max()) < len(keep) and not (sub[0] == sub[1]).any()
    import scipy.sparse as sp
    from scipy.sparse.csgraph import connected_components

    a = sp.coo_matrix((np.ones(sub.shape[1]), (sub[0].numpy(), sub[1].numpy())), shape=(len(keep),) * 2)
    assert connected_components(a)[0] <= 3  # a random half of a disk mesh stays (nearly) one piece
    kept = set(keep.tolist())
    direct = {(int(s), int(t)) for s, t in edges.T if int(s) in kept and int(t) in kept}
    index = {int(k): i for i, k in enumerate(keep)}
    assert {(index[s], index[t]) for s, t in direct} <= {(int(s), int(t)) for s, t in sub.T}
    for name in ("beno", "gnn"):
        run = train(load_config(None, ["train.progress=false", "threads=1", "train.epochs=1",
                                       "train.batch_size=4", f"model.name={name}", "model.hidden=8", "model.layers=2",
                                       f"data.root={imported}", "data.subsample=20", f"out={tmp_path / name}"]))
        assert np.isfinite(run["history"][-1]["train_loss"])


def test_every_cli_argument_has_help_and_every_command_an_example():
    def walk(parser: argparse.ArgumentParser, name: str):
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, p in action.choices.items():
                    yield from walk(p, f"{name} {sub}")

    for name, parser in walk(build_parser(), "geoop"):
        assert "example:" in (parser.epilog or ""), name
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                assert action.help and action.help != argparse.SUPPRESS, f"{name} {action.dest}"


def test_the_readme_walkthrough_runs_verbatim(tmp_path):
    """README's "Bring your own solver output", command by command, in a fresh folder."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- walkthrough -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "the README has no walkthrough block"
    bin_dir = Path(sys.executable).parent
    script = "set -euo pipefail\n" + block.group(1)
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "relative L2" in done.stdout
    pred = geoop.load(tmp_path / "byos" / "prediction.vtu")
    assert {"u", "u_true", "u_error"} <= set(pred.point_data) and (tmp_path / "byos" / "prediction.png").is_file()
    m = read_manifest(tmp_path / "byos" / "data")
    assert len(m.splits["test"]) == 8


def test_data_make_takes_fractions_and_a_split_file(tmp_path):
    assert main(["data", "make", "poisson2d", "--n", "6", "--out", str(tmp_path / "a"), "--workers", "2",
                 "--fractions", "0.5,0.5,0"]) == 0
    assert {k: len(v) for k, v in read_manifest(tmp_path / "a").splits.items()} == {"train": 3, "val": 3,
                                                                                       "test": 0}
    (tmp_path / "splits.json").write_text(json.dumps({"train": ["0", "1", "2", "3"], "val": ["sample_000004"],
                                                      "test": ["5"]}))
    assert main(["data", "make", "poisson2d", "--n", "6", "--out", str(tmp_path / "a"),
                 "--split-file", str(tmp_path / "splits.json")]) == 0  # the finished data, split anew
    m = read_manifest(tmp_path / "a")
    assert m.splits == {"train": [0, 1, 2, 3], "val": [4], "test": [5]}
    assert m.statistics["u"]["count"] == sum(r["n_points"] for r in m.samples[:4])


def test_generated_queries_a_box_grid_paraview_slices_and_random_samples(model, designs, tmp_path):
    geometry = designs / "held_out" / "design_13.vtu"
    assert main(["predict", "--checkpoint", str(model), "--geometry", str(geometry), "--query-grid", "9x7",
                 "--out", str(tmp_path / "grid.vtu")]) == 0
    import meshio

    grid = meshio.read(tmp_path / "grid.vtu")  # opens with meshio (and ParaView): quads, prediction, mask
    assert len(grid.points) == 63 and grid.cells_dict["quad"].shape == (48, 4)
    inside = grid.point_data["inside"]
    g = geoop.load(geometry)
    r = np.linalg.norm(grid.points[:, :2], axis=1)
    assert set(np.unique(inside)) == {0.0, 1.0} and (inside[r > g.points[:, 0].max() + 1e-9] == 0).all()
    assert np.isfinite(grid.point_data["u"]).all()
    made = predict_file(model, geometry, tmp_path / "random.vtu", generate={"random": 300})
    result, errors = made.geometry, made.errors
    assert result.n_points == 300 and errors["u"] is not None  # the FE field, interpolated, is the truth there
    with pytest.raises(GeoopError, match="not NXxNY"):
        predict_file(model, geometry, tmp_path / "x.vtu", generate={"grid": "9by7"})


def test_a_grid_prediction_equals_the_same_points_given_as_a_file(model, designs, tmp_path):
    geometry = designs / "held_out" / "design_13.vtu"
    grid = predict_file(model, geometry, tmp_path / "grid.vtu", generate={"grid": "23x17"}, chunk=100)
    np.save(tmp_path / "points.npy", grid.geometry.points)
    listed = predict_file(model, geometry, tmp_path / "listed.vtu", query=tmp_path / "points.npy",
                          query_columns="x,y", chunk=150)  # other chunks too: chunking does not change values
    assert np.array_equal(listed.geometry.points, grid.geometry.points)
    np.testing.assert_allclose(listed.geometry.point_data["u"], grid.geometry.point_data["u"], rtol=0, atol=1e-6)
    assert set(grid.seconds) == {"read", "queries", "predict", "write", "picture"}


def test_the_inside_mask_of_a_grid_is_the_sign_of_the_signed_distance():
    import trimesh

    from geoop.geometry.sampling import box_grid

    sphere = trimesh.creation.icosphere(subdivisions=4)
    surface = Geometry(np.asarray(sphere.vertices), {"triangle": np.asarray(sphere.faces)})
    grid = box_grid(surface, (21, 22, 23))
    sdf = geoop.signed_distance(surface, grid.points)
    inside = grid.point_data["inside"] == 1
    assert np.array_equal(inside, sdf <= 1e-9 * 2) and 0 < inside.sum() < len(inside)
    r = np.linalg.norm(grid.points, axis=1)  # the polyhedron lies within 0.5% of the unit sphere
    assert inside[r < 0.99].all() and not inside[r > 1.0 + 1e-9].any()
    # the mask queries only the nodes near the boundary (see grid_inside); a ring, whose hole and thin tube sit
    # between coarse nodes, gets the same mask as a query at every node, at every coarse stride
    from geoop.geometry.sdf import grid_inside

    ring = trimesh.creation.torus(1.0, 0.3)
    torus = Geometry(np.asarray(ring.vertices), {"triangle": np.asarray(ring.faces)})
    lo, hi = torus.bounds
    axes = [np.linspace(lo[a] - 0.1, hi[a] + 0.1, n) for a, n in enumerate((33, 35, 29))]
    nodes = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    exact = geoop.signed_distance(torus, nodes) <= 1e-9
    for stride in (2, 4, 8):
        assert np.array_equal(grid_inside(torus, axes, 1e-9, stride=stride), exact)
    assert 0.02 < exact.mean() < 0.3
