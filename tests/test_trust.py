"""Trust: conformal bands cover at their nominal rate, calibration reads the validation split only, the
novelty score ranks far-out geometries above the training ones, bands leave the prediction unchanged, and
models from before calibration still load and predict."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import geoop
from geoop.cli import main
from geoop.data import generate
from geoop.data.dataset import SimulationDataset
from geoop.errors import GeoopError
from geoop.training import load_config, load_model, train
from geoop.training.calibration import fit_trust, score_trust
from geoop.training.checkpoint import load_checkpoint, save_checkpoint
from geoop.trust.conformal import ScoreQuantiles, calibrate
from geoop.trust.novelty import NoveltyModel

TINY_FNO = ["model.name=fno", "model.hidden=8", "model.modes=4", "model.n_layers=1", "train.progress=false",
            "threads=1", "train.device=cpu", "train.lr=5e-3", "data.lift={u: g}"]


def _synthetic(rng: np.random.Generator, samples: int, points: int = 200) -> list[dict]:
    """Samples of y = f + sigma(x) eps with a known, strongly varying sigma; the "model" predicts f."""
    out = []
    for _ in range(samples):
        x = rng.uniform(0, 1, points)
        f = np.sin(6 * x) + rng.normal() * 0.3
        sigma = 0.01 + 0.5 * x ** 4
        y = f + sigma * rng.normal(size=points)
        out.append({"fields": {"u": {"pred": f[:, None], "truth": y[:, None], "scale": sigma[:, None],
                                     "defined": np.ones(points, bool), "weights": np.full(points, 1 / points)}}})
    return out


def _coverage(records: list[dict], q_points: float, q_samples: float, constant: bool = False) -> tuple[float, float]:
    from geoop.trust.conformal import estimated_error, relative_l2

    inside, covered = [], []
    for r in records:
        f = r["fields"]["u"]
        scale = np.ones_like(f["scale"]) if constant else f["scale"]
        inside.append(np.abs(f["truth"] - f["pred"]) <= q_points * scale)
        bound = q_samples * estimated_error(f["pred"], scale, f["weights"])
        covered.append(relative_l2(f["pred"], f["truth"], f["weights"]) <= bound)
    return float(np.mean(np.concatenate(inside))), float(np.mean(covered))


def test_bands_cover_at_the_nominal_rate_on_a_problem_with_known_noise():
    rng = np.random.default_rng(0)
    calibration_set, test_set = _synthetic(rng, 300), _synthetic(rng, 1000)
    for confidence in (0.8, 0.9):
        cal = calibrate(calibration_set, "val", "variance")
        points, samples = _coverage(test_set, cal.band("u", confidence),
                                    cal.fields["u"].samples.quantile(confidence))
        # 200k test points: binomial error ~0.001, but points of one sample share its offset: allow 0.01
        assert abs(points - confidence) < 0.01
        assert abs(samples - confidence) < 3 * np.sqrt(confidence * (1 - confidence) / 1000) + 1 / 301
    # the same data with one width everywhere: the same coverage needs wider bands on average
    flat = [{"fields": {"u": {**r["fields"]["u"], "scale": np.ones_like(r["fields"]["u"]["scale"])}}}
            for r in calibration_set]
    q_flat = calibrate(flat, "val", "constant").band("u", 0.9)
    points, _ = _coverage(test_set, q_flat, np.inf, constant=True)
    assert abs(points - 0.9) < 0.01
    adaptive = calibrate(calibration_set, "val", "variance").band("u", 0.9) * np.mean(
        np.concatenate([r["fields"]["u"]["scale"] for r in test_set]))
    assert adaptive < 0.75 * q_flat


def test_quantiles_are_conservative_and_honest_about_too_few_scores():
    scores = np.random.default_rng(1).exponential(size=50_000)
    kept = ScoreQuantiles.of(scores)
    assert len(kept.values) <= 2001
    exact = np.sort(scores)[int(np.ceil(50_001 * 0.9)) - 1]
    assert exact <= kept.quantile(0.9) <= np.sort(scores)[int(np.ceil(50_001 * 0.9)) + 30]
    assert ScoreQuantiles.of(np.arange(5.0)).quantile(0.9) == np.inf  # 5 scores cannot promise 90%
    assert ScoreQuantiles.from_dict(kept.to_dict()) == kept


@pytest.fixture(scope="module")
def poisson(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("trust") / "data"
    generate("poisson2d", root, n=40, seed=5, workers=2, progress=False, splits=(0.5, 0.3, 0.2))
    return root


@pytest.fixture(scope="module")
def run(poisson, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("trust_run") / "fno"
    return train(load_config(None, TINY_FNO + [f"data.root={poisson}", f"out={out}", "train.epochs=30",
                                               "train.uncertainty=variance", "train.uncertainty_weight=1.0"]))


@pytest.fixture(scope="module")
def plain(poisson, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("trust_run") / "fno_constant"
    return train(load_config(None, TINY_FNO + [f"data.root={poisson}", f"out={out}", "train.epochs=2"]))


def test_a_trained_model_is_calibrated_on_validation_and_covers_on_test(run, poisson):
    model = load_model(run["out"])
    assert model.uncertainty == "variance" and model.trust.calibration.split == "val"
    assert model.trust.calibration.samples == len(SimulationDataset(poisson, "val"))
    trust = run["test"]["trust"]
    assert 0.75 <= trust["coverage"]["u"]["point_coverage"] <= 0.99  # 8 test geometries: a loose check
    assert run["test"]["calibration_cpu_seconds"] < 30
    # the variance head learnt the size of the errors: from the targets' spread (its start) down to the residuals'
    g = geoop.load(poisson / "samples" / "sample_000000.npz")
    pred = model.predict(g, bands=True)
    residual = np.sqrt(np.mean((pred.point_data["u"] - g.point_data["u"]) ** 2))
    scale = pred.point_data["u_scale"]
    assert 0.5 < scale.mean() / residual < 2 and scale.mean() < 0.7 * float(model.normalizer.y_std[0])


def test_calibration_reads_the_validation_split_only(run, poisson, tmp_path):
    """Damaging the test split's targets changes nothing in the calibration; damaging the validation split's
    does; and calibrating on the test split is refused."""
    model = load_model(run["out"])
    copy = tmp_path / "data"
    shutil.copytree(poisson, copy)

    def damage(split: str) -> None:
        for i in SimulationDataset(copy, split).ids:
            path = copy / "samples" / f"sample_{i:06d}.npz"
            g = geoop.load(path, sort=False)
            g.with_point_data(u=g.point_data["u"] * 100.0).save(path)

    def fitted():
        kwargs = {"extension": model.fields.extension}
        return fit_trust(model, SimulationDataset(copy, "train", **kwargs), SimulationDataset(copy, "val", **kwargs))

    before = fitted()
    damage("test")
    assert fitted().to_dict() == before.to_dict()
    damage("val")
    assert fitted().calibration.to_dict() != before.calibration.to_dict()
    with pytest.raises(GeoopError, match="test split"):
        fit_trust(model, SimulationDataset(copy, "train"), SimulationDataset(copy, "test"))


def test_a_far_out_geometry_is_more_novel_than_every_validation_one(run, poisson):
    model = load_model(run["out"])
    novelty = model.trust.novelty
    g = geoop.load(poisson / "samples" / "sample_000000.npz")
    far = geoop.Geometry(g.points * np.array([1.0, 0.2]), g.cells, g.point_data)  # a flat slab, 5x thinner
    report = model.trust_report(far, model.predict(far, bands=True), level=0.1)  # 12 validation geometries:
    assert report.p_value == pytest.approx(1 / (len(novelty.calibration) + 1)) and report.flagged  # p >= 1/13
    center, scale = model.normalizer.center.numpy(), float(model.normalizer.scale)
    from geoop.trust.novelty import descriptor

    score = novelty.score(descriptor(far, center, scale, list(model.trust.ranges), None))[0]
    assert score > novelty.calibration.max() and score > 2 * np.median(novelty.calibration)
    shifted = g.with_point_data(k=g.point_data["k"] + 50.0)  # an input far outside its training range
    assert "k" in model.trust_report(shifted, model.predict(shifted, bands=True)).outside_range
    restored = NoveltyModel.from_dict(json.loads(json.dumps(novelty.to_dict())))
    assert restored.p_value(novelty.train[:3]).tolist() == novelty.p_value(novelty.train[:3]).tolist()


@pytest.fixture(scope="module")
def residual(plain, poisson, tmp_path_factory) -> Path:
    """The constant-width run with a residual scale fitted afterwards (the model itself untouched)."""
    from geoop.training.calibration import calibrate_checkpoint

    path = tmp_path_factory.mktemp("residual") / "model.safetensors"
    shutil.copy(plain["out"] / "model.safetensors", path)
    extension = load_model(path).fields.extension
    calibrate_checkpoint(path, SimulationDataset(poisson, "train", extension=extension),
                         SimulationDataset(poisson, "val", extension=extension), residual=True)
    return path


def test_a_residual_scale_leaves_the_model_alone_and_follows_its_errors(residual, plain, poisson):
    before, after = load_model(plain["out"]), load_model(residual)
    assert after.uncertainty == "residual" and before.uncertainty == "constant"
    g = geoop.load(poisson / "samples" / "sample_000003.npz")
    assert np.array_equal(before.predict(g).point_data["u"], after.predict(g).point_data["u"])
    pred = after.predict(g, bands=True)
    error, scale = np.abs(pred.point_data["u"] - g.point_data["u"]), pred.point_data["u_scale"]
    assert scale.std() > 0.1 * scale.mean()  # not one width everywhere
    from scipy.stats import spearmanr

    assert spearmanr(scale, error).statistic > 0.2  # larger where the model errs more


@pytest.mark.parametrize("kind", ["variance", "constant", "residual"])
def test_bands_leave_the_prediction_unchanged_and_bracket_it(kind, run, plain, residual, poisson):
    model = load_model({"variance": run["out"], "constant": plain["out"], "residual": residual}[kind])
    g = geoop.load(poisson / "samples" / "sample_000002.npz")
    queries = np.random.default_rng(3).uniform(0.1, 0.9, (300, 2))
    for where in (None, queries):
        alone, banded = model.predict(g, where), model.predict(g, where, bands=True, confidence=0.8, chunk=128)
        assert np.array_equal(alone.point_data["u"], banded.point_data["u"])
        lo, hi = banded.point_data["u_lo"], banded.point_data["u_hi"]
        assert (lo < banded.point_data["u"]).all() and (hi > banded.point_data["u"]).all()
    wider = model.predict(g, queries, bands=True, confidence=0.95)
    assert (wider.point_data["u_hi"] - wider.point_data["u_lo"] >= hi - lo).all()


def test_predict_and_evaluate_report_the_bands_through_the_cli(run, poisson, tmp_path, capsys):
    checkpoint = str(run["out"] / "model.safetensors")
    sample = str(poisson / "samples" / "sample_000001.npz")
    assert main(["predict", "--checkpoint", checkpoint, "--geometry", sample, "--out", str(tmp_path / "p.vtu"),
                 "--json", str(tmp_path / "p.json"), "--confidence", "0.8"]) == 0
    text = capsys.readouterr().out
    assert "with 80% confidence" in text and "novelty p =" in text
    written = geoop.load(tmp_path / "p.vtu")
    assert {"u_lo", "u_hi", "u_scale"} <= set(written.point_data)
    report = json.loads((tmp_path / "p.json").read_text())["trust"]
    assert report["available"] and 0 < report["novelty"]["p_value"] <= 1
    assert main(["evaluate", "--checkpoint", checkpoint, "--data", str(poisson), "--json",
                 str(tmp_path / "e.json")]) == 0
    assert "coverage of the 90% bands" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "e.json").read_text())
    assert set(metrics["trust"]["coverage"]) == {"u"} and len(metrics["trust"]["samples"]) == metrics["samples"]


def test_a_model_from_before_calibration_loads_predicts_and_says_bands_are_unavailable(plain, poisson, tmp_path,
                                                                                       capsys):
    weights, meta, _ = load_checkpoint(plain["out"] / "model.safetensors")
    assert load_model(plain["out"]).trust is not None  # a constant-width model is calibrated too
    old = {k: v for k, v in meta["operator"].items() if k not in ("trust", "uncertainty")}
    save_checkpoint(tmp_path / "old.safetensors", weights, {**meta, "operator": old})
    model = load_model(tmp_path / "old.safetensors")
    g = geoop.load(poisson / "samples" / "sample_000001.npz")
    assert np.isfinite(model.predict(g).point_data["u"]).all()
    assert not model.trust_report(g, model.predict(g)).available
    with pytest.raises(GeoopError, match="no calibration"):
        model.predict(g, bands=True)
    with pytest.raises(GeoopError, match="no calibration"):
        score_trust(model, SimulationDataset(poisson, "test"))
    assert main(["predict", "--checkpoint", str(tmp_path / "old.safetensors"), "--geometry",
                 str(poisson / "samples" / "sample_000001.npz"), "--out", str(tmp_path / "p.vtu")]) == 0
    assert "error bands unavailable" in capsys.readouterr().out
