"""Train, evaluate, predict: checkpoints without pickle, exact resume after a kill, prediction from every
file format, and clear errors for geometries the model cannot take."""
from __future__ import annotations

import itertools
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import geoop
from geoop import Geometry
from geoop.cli import main
from geoop.data import generate
from geoop.data.importer import import_folder
from geoop.errors import CorruptFileError, FieldError, GeometryError, GeoopError
from geoop.io import FORMATS
from geoop.training import load_config, load_model, train
from geoop.training.batching import make_batches
from geoop.training.checkpoint import flatten_state, load_checkpoint, save_checkpoint, unflatten_state
from geoop.training.losses import field_errors
from tests.conftest import box_tets

ROOT = Path(__file__).resolve().parents[1]
TINY = ["model.resolution=16", "model.hidden=16", "model.modes=6", "model.n_layers=2", "model.in_gno_hidden=[16]",
        "model.out_gno_hidden=[32]", "model.projection_hidden=32", "train.batch_size=4", "train.lr=3e-3",
        "train.progress=false", "threads=1"]


@pytest.fixture(scope="module")
def poisson(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("poisson") / "data"
    generate("poisson2d", root, n=32, seed=3, workers=2, progress=False)
    return root


@pytest.fixture(scope="module")
def trained(poisson, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("run") / "gino"
    return train(load_config(None, TINY + [f"data.root={poisson}", f"out={out}", "train.epochs=20", "train.lr=5e-3"]))


@pytest.fixture(scope="module")
def model3d(tmp_path_factory) -> Path:
    """A tiny 3D GINO without input fields (target: a smooth function of position) on imported VTU files."""
    base = tmp_path_factory.mktemp("boxes")
    rng = np.random.default_rng(0)
    for i in range(10):
        g = box_tets(4, size=tuple(rng.uniform(0.6, 1.4, 3)))
        g.with_point_data(t=np.sin(2 * g.points[:, 0]) + g.points[:, 1] * g.points[:, 2]).save(base / f"b{i}.vtu")
    import_folder(base, base / "data", inputs=[], targets=["t"], progress=False)
    out = base / "run"
    train(load_config(None, TINY + [f"data.root={base / 'data'}", f"out={out}", "train.epochs=2",
                                    "model.resolution=8", "model.modes=3"]))
    return out / "model.safetensors"


def test_state_flattening_keeps_types_and_values():
    state = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.randn(4, 2)}},
             "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0], "name": None}]}
    tensors: dict = {}
    skeleton = json.loads(json.dumps(flatten_state(state, tensors)))
    back = unflatten_state(skeleton, tensors)
    assert list(back["state"]) == [0] and back["param_groups"][0]["betas"] == (0.9, 0.999)
    torch.testing.assert_close(back["state"][0]["exp_avg"], state["state"][0]["exp_avg"])


def test_checkpoints_load_without_unpickling(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(3)}, {"note": "x"},
                           {"opt": {1: torch.zeros(2)}})
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    monkeypatch.setattr(pickle, "Unpickler", lambda *a, **k: pytest.fail("unpickled"))
    weights, meta, extra = load_checkpoint(path)
    assert meta["note"] == "x" and meta["geoop_version"] == geoop.__version__
    torch.testing.assert_close(weights["w"], torch.ones(3))
    assert json.loads((tmp_path / "m.json").read_text())["note"] == "x"
    assert list(extra["opt"]) == [1]


def test_a_failed_save_leaves_the_previous_checkpoint(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(3)}, {"epoch": 1})
    import geoop.training.checkpoint as ckpt

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"w": torch.zeros(3)}, {"epoch": 2})
    assert load_checkpoint(path)[1]["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_damaged_checkpoint_is_a_typed_error(tmp_path):
    bad = tmp_path / "model.safetensors"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(CorruptFileError, match="model.safetensors"):
        load_model(bad)


@pytest.mark.parametrize("max_norm", [1e-2, 1e3])
def test_gradient_clipping_matches_torchs_on_complex_spectral_weights(max_norm):
    """The global norm over real views of complex gradients is torch's norm; clipped (or not) the same."""
    import copy

    from geoop.layers.fno import FNO
    from geoop.training.gradients import clip_gradient_norm

    torch.manual_seed(0)
    model = FNO(2, 1, modes=(6, 6), hidden=8, n_layers=2)
    model(torch.randn(2, 2, 12, 12)).square().mean().backward()
    twin = copy.deepcopy(model)
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        theirs.grad = ours.grad.clone()
    assert any(p.is_complex() for p in model.parameters())
    expected = torch.nn.utils.clip_grad_norm_(twin.parameters(), max_norm)
    total = clip_gradient_norm(model.parameters(), max_norm)
    assert float(total) == pytest.approx(float(expected), rel=1e-5)
    assert (float(total) > max_norm) == (max_norm == 1e-2)  # one case clips, the other does not
    for ours, theirs in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(ours.grad, theirs.grad)


def test_relative_l2_is_quadrature_weighted_and_masked():
    y = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    pred = y + torch.tensor([[1.0], [0.0], [0.0], [100.0]])
    mask = torch.tensor([[True], [True], [True], [False]])
    w = torch.tensor([2.0, 1.0, 1.0, 1.0])
    err = field_errors(pred, y, mask, w, torch.zeros(4, dtype=torch.long), 1, {"u": slice(0, 1)})["u"]
    assert float(err) == pytest.approx(np.sqrt(2.0 / (2 + 4 + 9)))


def test_point_budget_batches_cover_every_sample_and_replay_from_the_seed():
    sizes = np.random.default_rng(0).integers(100, 1000, 50).tolist()
    batches = make_batches(sizes, batch_size=8, max_points=2000, seed=1, epoch=3)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert all(sum(sizes[i] for i in b) <= 2000 or len(b) == 1 for b in batches)
    assert batches == make_batches(sizes, batch_size=8, max_points=2000, seed=1, epoch=3)
    assert batches != make_batches(sizes, batch_size=8, max_points=2000, seed=1, epoch=4)


def _constant_oracle_error(root: Path, split: str = "test") -> float:
    """Mean relative L2 of predicting each sample's own mean of u (no model without input can do better)."""
    from geoop.data.dataset import SimulationDataset

    ds = SimulationDataset(root, split)
    errors = []
    for i in range(len(ds)):
        u = ds[i].y[:, 0].double()
        errors.append(float((u - u.mean()).norm() / u.norm()))
    return float(np.mean(errors))


def test_a_small_gino_learns_poisson_and_its_checkpoint_predicts_the_same(trained, poisson):
    history = trained["history"]
    assert history[-1]["val_rel_l2"] < 0.5 * history[0]["val_rel_l2"]
    # each test sample's own mean value errs by ~0.9; 25 training samples bring GINO to ~0.35-0.45
    assert trained["test"]["fields"]["u"]["rel_l2"] < 0.6 * _constant_oracle_error(poisson)
    model = load_model(trained["out"])
    assert model.config()["normalization"]["scale"] > 0
    g = geoop.load(poisson / "samples" / "sample_000000.npz")
    pred = model.predict(g)
    assert pred.n_points == g.n_points and np.isfinite(pred.point_data["u"]).all()
    chunked = model.predict(g, g.points, chunk=200)
    np.testing.assert_allclose(chunked.point_data["u"], pred.point_data["u"], atol=1e-5)


def test_a_checkpoint_from_before_the_normalizer_module_still_loads(trained, poisson):
    """Checkpoints written before the `Normalizer` became a submodule kept its buffers at the top level (and
    their fields as a plain dict without the newer keys): they load to the same predictions."""
    from geoop.models.field_operator import FieldOperator

    model = load_model(trained["out"])
    config = model.config()
    config["fields"] = {k: v for k, v in config["fields"].items() if k not in ("distance", "potential_flow")}
    old = {k.removeprefix("normalizer."): v for k, v in model.state_dict().items()}
    again = FieldOperator.from_config(config)
    again.load_state_dict(old)
    g = geoop.load(poisson / "samples" / "sample_000000.npz")
    np.testing.assert_array_equal(again.eval().predict(g).point_data["u"], model.predict(g).point_data["u"])


def test_cli_evaluate_prints_a_table_and_writes_json(trained, poisson, capsys, tmp_path):
    out = tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(trained["out"] / "model.safetensors"), "--data", str(poisson),
                 "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "rel L2" in text and "u " in text
    metrics = json.loads(out.read_text())
    assert metrics["fields"]["u"]["rel_l2"] == pytest.approx(trained["test"]["fields"]["u"]["rel_l2"], rel=1e-5)


def test_clipped_errors_clip_to_the_training_percentiles(trained, poisson):
    """`rel_l2_clipped` clips prediction and truth to the 1st-99th percentiles of the training targets: the
    bounds are those percentiles; without bounds it is the plain error; bounds that meet (both sides clipped to
    one value) leave no error at all, whatever the model predicts."""
    from geoop.data.dataset import SimulationDataset
    from geoop.training.trainer import Evaluator

    model = load_model(trained["out"])
    train_split = SimulationDataset(poisson, "train")  # 2% of its values lie outside the bounds (test split: none)
    u = torch.cat([d.y[:, 0] for d in train_split]).double()
    low, high = model.normalizer.y_low, model.normalizer.y_high
    assert float(low) == pytest.approx(float(torch.quantile(u, 0.01)), rel=1e-5)
    assert float(high) == pytest.approx(float(torch.quantile(u, 0.99)), rel=1e-5)
    assert float(low) > float(u.min()) and float(high) < float(u.max())  # it does clip
    fitted = Evaluator(model, cache="memory").evaluate(train_split)["fields"]["u"]
    assert fitted["rel_l2_clipped"] != pytest.approx(fitted["rel_l2"], rel=1e-4)
    low.fill_(-float("inf"))
    high.fill_(float("inf"))
    unbounded = Evaluator(model, cache="memory").evaluate(train_split)["fields"]["u"]
    assert unbounded["rel_l2_clipped"] == pytest.approx(unbounded["rel_l2"], rel=1e-6)
    assert unbounded["rel_l2"] == pytest.approx(fitted["rel_l2"], rel=1e-6)
    low.fill_(float(u.median()))
    high.fill_(float(u.median()))
    collapsed = Evaluator(model, cache="memory").evaluate(train_split)["fields"]["u"]
    assert collapsed["rel_l2_clipped"] == pytest.approx(0.0) and collapsed["rel_l2"] > 0.1


def test_predict_names_missing_inputs_and_refuses_another_dimension(trained, poisson):
    model = load_model(trained["out"])
    g = geoop.load(poisson / "samples" / "sample_000001.npz")
    bare = Geometry(g.points, g.cells, {"k": g.point_data["k"]})
    with pytest.raises(FieldError, match="'f'"):
        model.predict(bare)
    with pytest.raises(GeometryError, match="2D"):
        model.predict(box_tets(2))
    far = Geometry(g.points * 5, g.cells, dict(g.point_data))
    with pytest.warns(UserWarning, match="extrapolation"):
        model.predict(far)


def test_a_boundary_model_on_a_bare_point_cloud_is_a_clear_error(poisson, tmp_path, capsys):
    run = tmp_path / "beno"
    train(load_config(None, [t for t in TINY if not t.startswith("model.")] + [
        "model.name=beno", "model.hidden=8", "model.layers=1", "model.boundary_layers=1", f"data.root={poisson}",
        f"out={run}", "train.epochs=1"]))
    g = geoop.load(poisson / "samples" / "sample_000000.npz")
    cloud = tmp_path / "cloud.npz"
    Geometry(g.points, point_data=dict(g.point_data)).save(cloud)  # the same fields, no cells: no boundary
    assert main(["predict", "--checkpoint", str(run / "model.safetensors"), "--geometry", str(cloud),
                 "--out", str(tmp_path / "p.vtu")]) == 2
    err = capsys.readouterr().err
    assert "cloud.npz" in err and "boundary" in err and "fix:" in err and "Traceback" not in err


def test_more_shards_than_training_samples_is_refused(poisson, tmp_path):
    with pytest.raises(GeoopError, match="cannot fill 100 shards"):
        train(load_config(None, TINY + [f"data.root={poisson}", f"out={tmp_path / 'r'}", "train.shards=100"]))


def _files_of_every_format(tmp_path: Path) -> list[Path]:
    volume = box_tets(3, size=(1.0, 1.2, 0.8))
    surface = Geometry(volume.points, {"triangle": volume.boundary_facets})
    surface = Geometry(*_compact(surface))
    cloud = Geometry(volume.points)
    files = []
    for ext, fmt in sorted(FORMATS.items()):
        if fmt.writer is None:  # read-only formats (VTM, OpenFOAM cases) are tested in test_cfd_output
            continue
        holds = fmt.holds
        g = volume if "mesh" in holds or holds == "everything" else surface if "surface" in holds or \
            "faces" in holds else cloud
        files.append(g.save(tmp_path / f"shape{ext}"))
    return files


def _compact(surface: Geometry) -> tuple[np.ndarray, dict]:
    tri = surface.cells["triangle"]
    used, inverse = np.unique(tri, return_inverse=True)
    return surface.points[used], {"triangle": inverse.reshape(tri.shape)}


def test_geoop_predict_works_on_every_supported_format(model3d, tmp_path, capsys):
    """Every format predicts; a bare cloud (CSV, XYZ, NPY) with the surface it samples, since the model feeds
    the signed distance to its network (without the surface it refuses, naming --surface)."""
    files = _files_of_every_format(tmp_path)
    for path in files:
        out = tmp_path / f"pred_{path.suffix[1:]}.vtu"
        cloud = geoop.load(path).kind == "points"
        if cloud:
            assert main(["predict", "--checkpoint", str(model3d), "--geometry", str(path), "--out", str(out)]) == 2
            assert "--surface" in capsys.readouterr().err
        surface = ["--surface", str(tmp_path / "shape.stl")] if cloud else []
        assert main(["predict", "--checkpoint", str(model3d), "--geometry", str(path), "--out", str(out),
                     *surface]) == 0, capsys.readouterr().err
        result = geoop.load(out, sort=False)
        assert np.allclose(result.points, geoop.load(path, sort=False).points), path.name  # the file's order
        assert np.isfinite(result.point_data["t"]).all(), path.name
        assert out.with_suffix(".png").stat().st_size > 5000
    query = tmp_path / "queries.csv"
    Geometry(np.random.default_rng(0).uniform(0, 0.8, (500, 3))).save(query)
    assert main(["predict", "--checkpoint", str(model3d), "--geometry", str(tmp_path / "shape.stl"),
                 "--query", str(query), "--out", str(tmp_path / "q.vtu")]) == 0
    assert geoop.load(tmp_path / "q.vtu").n_points == 500


def _history(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_a_killed_run_resumes_on_the_same_trajectory(poisson, tmp_path):
    args = [sys.executable, "-m", "geoop", "train", "--set", f"data.root={poisson}", "--set", "train.epochs=6"]
    for item in TINY:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(args + ["--out", str(tmp_path / "full")], check=True, env=env, capture_output=True)
    killed = tmp_path / "killed"
    proc = subprocess.Popen(args + ["--out", str(killed)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not ((killed / "metrics.jsonl").exists() and len(_history(killed)) >= 2):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(_history(killed))
    assert 2 <= done_before < 6
    subprocess.run(args + ["--out", str(killed)], check=True, env=env, capture_output=True)
    full, resumed = _history(tmp_path / "full"), _history(killed)
    assert [h["epoch"] for h in resumed] == list(range(1, 7))
    np.testing.assert_allclose([h["train_loss"] for h in resumed], [h["train_loss"] for h in full], rtol=1e-5)
    np.testing.assert_allclose([h["val_rel_l2"] for h in resumed], [h["val_rel_l2"] for h in full], rtol=1e-5)


SWAPS = {"gino": [], "kdfno": ["model.n_subdomains=4", "model.hidden=8", "model.modes=4"],
         "beno": ["model.hidden=16", "model.layers=2", "model.boundary_layers=1"],
         "gnn": ["model.hidden=16", "model.layers=2"],
         "mino": ["model.tokens_per_axis=6", "model.hidden=16", "model.layers=1", "model.decoder_layers=1"],
         "gnot": ["model.hidden=16", "model.layers=1"],
         "fno": ["model.hidden=8", "model.modes=4"],
         "transolver": ["model.hidden=16", "model.layers=1", "model.heads=2", "model.slices=4"]}


@pytest.mark.parametrize("name", sorted(SWAPS))
def test_every_registered_model_trains_and_predicts_from_a_config(name, poisson, tmp_path):
    """Swapping the model is one config line: the same data, batches, Trainer, checkpoint and predict."""
    from geoop.models.registry import MODELS

    assert set(SWAPS) == set(MODELS)
    settings = TINY + SWAPS[name] if name == "gino" else \
        [t for t in TINY if not t.startswith("model.")] + SWAPS[name]
    run = train(load_config(None, settings + [f"model.name={name}", f"data.root={poisson}",
                                              f"out={tmp_path / name}", "train.epochs=2"]))
    assert np.isfinite(run["test"]["rel_l2"])
    model = load_model(tmp_path / name)
    g = geoop.load(poisson / "samples" / "sample_000002.npz")
    queries = geoop.sample_volume(g, 100, seed=0).points
    pred = model.predict(g, queries)
    assert pred.n_points == 100 and np.isfinite(pred.point_data["u"]).all()
    # the input side is encoded once and every chunk of queries decoded from it, with the same answer
    calls = []
    encode = model.model.encode
    model.model.encode = lambda *a: calls.append(1) or encode(*a)
    for where in (queries, None):  # fresh points, and the geometry's own points
        whole = model.predict(g, where).point_data["u"]
        chunked = model.predict(g, where, chunk=37).point_data["u"]
        np.testing.assert_allclose(chunked, whole, rtol=1e-4, atol=1e-5 * np.abs(whole).max())
    assert len(calls) == 4


def test_every_shipped_config_builds_its_model(tmp_path):
    from geoop.models.registry import DataFacts, build_model

    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert {load_config(p, [f"data.root={tmp_path}"]).model.name for p in configs} >= \
        {"gino", "kdfno", "beno", "mino", "gnot"}
    rng = np.random.default_rng(0)
    for path in configs:
        config = load_config(path, [f"data.root={tmp_path}"])
        dim = 3 if "3d" in path.stem else 2
        points = [rng.uniform(-1, 1, (400, dim))]
        net, described = build_model(config.model.name, dim, 3, 1, DataFacts(points, [1], [2]),
                                     **config.model.options)
        assert sum(p.numel() for p in net.parameters()) > 0 and json.dumps(described)


def test_a_misspelt_config_key_is_refused_with_the_nearest_valid_one(capsys):
    config = str(ROOT / "configs" / "fno_poisson2d.yaml")
    assert main(["train", "--config", config, "--set", "data.lft=x"]) == 2
    assert "did you mean data.lift?" in capsys.readouterr().err
    assert main(["train", "--config", config, "--set", "train.bugdet=3"]) == 2
    assert "did you mean train.budget?" in capsys.readouterr().err


def test_config_show_resolves_every_shipped_config_with_its_defaults(capsys):
    import yaml

    for path in sorted((ROOT / "configs").glob("*.yaml")):
        assert main(["config", "show", str(path), "--set", "train.budget=123"]) == 0
        shown = yaml.safe_load(capsys.readouterr().out)
        assert shown["train"]["budget"] == 123 and shown["train"]["schedule"] == "onecycle"
        assert shown["model"]["name"] == path.stem.split("_")[0] and "extension" in shown["data"]


def test_a_budget_is_the_stopping_rule_and_sizes_the_schedule(poisson, tmp_path):
    """The first epoch warms up and measures the speed; the plan then fits the rest of the budget, so the run
    ends on (or just short of) its budget with the learning rate annealed."""
    out = tmp_path / "budget"
    run = train(load_config(None, TINY + [f"data.root={poisson}", f"out={out}", "train.budget=6",
                                          "train.clock=cpu", "train.lr=3e-3"]))
    history = run["history"]
    assert len(history) >= 3
    spent = history[-1]["cpu_seconds"]
    slowest_epoch = max(h["seconds"] for h in history)
    assert 0.8 * 6 <= spent <= 6 + slowest_epoch  # the last partial epoch's validation may end past it
    _, meta, _ = load_checkpoint(out / "last.safetensors")
    plan = meta["plan"]
    assert plan["warmup"] == history[0]["steps"] and plan["total"] >= sum(h["steps"] for h in history)
    assert history[-1]["lr"] < 0.2 * 3e-3  # the cosine had nearly run out when the budget did
    with pytest.raises(GeoopError, match="train.budget=6"):  # a resumed run keeps its plan, or refuses
        train(load_config(None, TINY + [f"data.root={poisson}", f"out={out}", "train.budget=10"]))
    with pytest.raises(GeoopError, match=r"train\.epochs=None.*--out"):  # so does one with a new epoch count
        train(load_config(None, TINY + [f"data.root={poisson}", f"out={out}", "train.budget=6", "train.clock=cpu",
                                        "train.lr=3e-3", "train.epochs=40"]))


def test_schedule_plans_are_pure_functions_of_the_step():
    from geoop.training.schedule import SchedulePlan, budget_steps, epoch_plan

    one = epoch_plan("onecycle", 100)
    assert one.warmup == 30 and one.factor(0) == pytest.approx(1 / 25) and one.factor(30) == pytest.approx(1.0)
    assert one.factor(100) < 1e-4
    budgeted = SchedulePlan("onecycle", 10, None)
    early = [budgeted.factor(s) for s in range(10)]
    budgeted.total = 50  # fixing the plan after the warm-up epoch does not rewrite the warm-up
    assert [budgeted.factor(s) for s in range(10)] == early and budgeted.factor(50) < 1e-4
    assert SchedulePlan("cosine", 10, 50).factor(5) == 1.0 and SchedulePlan("constant", 0, 9).factor(9) == 1.0
    assert budget_steps(10, spent=10.0, budget=100.0, seconds_per_step=1.0, margin=1.0) == 100


@pytest.mark.parametrize("new_total", [80, 200])
def test_a_refit_plan_keeps_the_rate_continuous_and_anneals_at_the_new_end(new_total):
    """A budgeted run refits its plan to the measured speed: the rate before the refit is unchanged, it moves on
    from where it was, and the anneal now ends at the new total; a resumed run (the state's round trip) agrees."""
    from geoop.training.schedule import SchedulePlan

    plan = SchedulePlan("onecycle", 10, 100)
    before = [plan.factor(s) for s in range(61)]
    plan.refit(60, new_total)
    assert [plan.factor(s) for s in range(61)] == pytest.approx(before, rel=1e-12)
    assert abs(plan.factor(61) - before[60]) < 0.05 and plan.factor(new_total) < 1e-4
    assert plan.progress(new_total - 1) < 1.0 == plan.progress(new_total)
    rates = [plan.factor(s) for s in range(60, new_total + 1)]
    assert all(a >= b for a, b in itertools.pairwise(rates))  # still annealing
    again = SchedulePlan(**json.loads(json.dumps(plan.state())))
    assert [again.factor(s) for s in range(new_total + 5)] == [plan.factor(s) for s in range(new_total + 5)]
    plan.refit(new_total, 10 * new_total)  # a plan already run out stays out: the rate does not rise again
    assert plan.total == new_total
    long = SchedulePlan("onecycle", 10, 1000)
    long.refit(100, 1010)  # 1% more steps: within the speed's noise, no knot
    assert long.knots == [] and long.total == 1000


def test_a_budget_spent_before_the_first_step_is_a_clear_error(poisson, tmp_path):
    """Preparation counts against the budget and stops with it (not after every sample is prepared)."""
    with pytest.raises(GeoopError, match=r"spent preparing the samples' structures \(\d+ of \d+ done.*before the "
                                         "first training step") as error:
        train(load_config(None, TINY + [f"data.root={poisson}", f"out={tmp_path / 'r'}", "train.budget=1e-6"]))
    # it stopped partway (the CPU clock may tick coarsely, so not necessarily after the first sample)
    done, total = map(int, re.search(r"\((\d+) of (\d+) done", str(error.value)).groups())
    assert done < total


def test_a_lifted_target_predicts_the_same_at_its_nodes_and_through_queries(poisson, tmp_path):
    """u = g carried inward + the model's output: at the nodes (as in training) and at the same points passed
    as queries in chunks (inputs interpolated there) the prediction is the same."""
    from geoop.data.features import sample_features

    out = tmp_path / "lifted"
    train(load_config(None, [t for t in TINY if not t.startswith("model.")] + [
        "model.name=fno", "model.hidden=8", "model.modes=4", "data.lift={u: g}", f"data.root={poisson}",
        f"out={out}", "train.epochs=2"]))
    model = load_model(out)
    g = geoop.load(poisson / "samples" / "sample_000003.npz")
    data = sample_features(g, list(model.fields.inputs), model.fields.specs, extension=model.fields.extension)
    with torch.no_grad():
        direct = model(data.x, model.prepare(data, g))[:, 0].numpy()
    chunked = model.predict(g, g.points, chunk=300).point_data["u"]
    np.testing.assert_allclose(chunked, direct, rtol=1e-4, atol=1e-4)
    # the lift: g carried inward, g itself on its mask
    extended = data.x[:, int(model.normalizer.lift_sources[0])].numpy()
    on = g.point_data["dirichlet"].astype(bool)
    np.testing.assert_allclose(extended[on], g.point_data["g"][on], rtol=1e-5, atol=1e-5)
