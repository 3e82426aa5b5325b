"""The operator contract, checked on every registered model (like scikit-learn's `parametrize_with_checks`): a
model registered anywhere is held to the same rules. A toy model written here goes through the command line."""
from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import pytest
import torch
from torch import nn
from safetensors.torch import load_file, save_file

from geoop.errors import GeoopError
from geoop.graph.interpolation import idw_matrix
from geoop.graph.structures import Structure, blocks, rows, sample_ids, total
from geoop.models.base import FIELD_OF, MissingInputError, Need, Operator, NO_INPUTS, SampleInputs
from geoop.models.registry import (MODELS, TINY, DataFacts, build_model, class_builder, model_from_config,
                                   register, unregister)

NAMES = sorted(MODELS)
IN, OUT = 3, 2


def _square_sdf(p: np.ndarray) -> np.ndarray:
    return 0.95 - np.abs(p).max(axis=1)


def _geometries(seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor, SampleInputs]]:
    """Three clouds of other sizes in the square [-0.95, 0.95]^2, each with queries and all sample inputs."""
    rng = np.random.default_rng(seed)
    out = []
    for n, m in ((150, 40), (90, 25), (60, 30)):
        pos = torch.tensor(rng.uniform(-0.95, 0.95, (n, 2)), dtype=torch.float32)
        pos[:12, 0] = torch.linspace(-0.95, 0.95, 12)  # a few nodes on the wall y = +-0.95
        pos[:12, 1] = torch.tensor([0.95, -0.95] * 6)
        boundary = pos.abs().max(1).values > 0.94
        normals = torch.where(boundary[:, None], torch.sign(pos) * (pos.abs() == pos.abs().max(1, keepdim=True).values),
                              torch.zeros_like(pos))
        inputs = SampleInputs(weights=torch.full((n,), 1.0 / n), boundary=boundary, normals=normals,
                              boundary_weights=boundary.float() / max(int(boundary.sum()), 1), sdf_fn=_square_sdf)
        queries = torch.tensor(rng.uniform(-0.9, 0.9, (m, 2)), dtype=torch.float32)
        out.append((pos, queries, inputs))
    return out


def _fields(geometries, seed: int = 1) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(len(pos), IN, generator=g) for pos, _, _ in geometries]


def _tiny(name: str, geometries) -> Operator:
    torch.manual_seed(0)
    facts = DataFacts([pos.double().numpy() for pos, _, _ in geometries], boundary_channels=[1], type_channels=[2])
    model, _ = build_model(name, 2, IN, OUT, facts, **TINY[name])
    return model.eval()


def _first(name: str, geometries) -> tuple:
    """A tiny model of `name`, the first geometry (points, queries, the inputs the model takes) and its fields."""
    model = _tiny(name, geometries)
    pos, queries, inputs = geometries[0]
    return model, pos, queries, inputs.only(model.takes), _fields(geometries)[0]


@pytest.fixture(scope="module")
def geometries():
    return _geometries()


@pytest.mark.parametrize("name", NAMES)
def test_every_model_is_an_operator_with_typed_needs(name, geometries):
    model = _tiny(name, geometries)
    assert isinstance(model, Operator)
    assert all(isinstance(n, Need) for n in type(model).needs) and model.takes <= type(model).needs


@pytest.mark.parametrize("name", NAMES)
def test_a_mixed_batch_equals_each_sample_alone(name, geometries):
    model = _tiny(name, geometries)
    prepared = [model.prepare(pos, q, inputs.only(model.takes)) for pos, q, inputs in geometries]
    fields = _fields(geometries)
    with torch.no_grad():
        alone = torch.cat([model(f, p) for f, p in zip(fields, prepared, strict=True)])
        together = model(torch.cat(fields), type(prepared[0]).collate(prepared))
    torch.testing.assert_close(together, alone, atol=2e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_decoding_in_chunks_equals_the_whole_and_the_forward_pass(name, geometries):
    model, pos, queries, inputs, f = _first(name, geometries)
    with torch.no_grad():
        prepared = model.prepare(pos, queries, inputs)
        whole = model(f, prepared)
        state = model.encode(f, prepared)
        torch.testing.assert_close(model.decode(state, prepared), whole)
        chunks = [model.decode(state, model.with_queries(prepared, part, inputs)) for part in queries.split(16)]
    torch.testing.assert_close(torch.cat(chunks), whole, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_prepare_changes_nothing_on_the_model(name, geometries):
    model = _tiny(name, geometries)
    before = copy.deepcopy(model.state_dict())
    for pos, q, inputs in geometries:
        model.prepare(pos * 3, q * 3, inputs.only(model.takes))  # a geometry unlike the training ones
    after = model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", NAMES)
def test_the_output_does_not_depend_on_the_order_of_the_input_points(name, geometries):
    model, pos, queries, inputs, f = _first(name, geometries)
    perm = torch.randperm(len(pos), generator=torch.Generator().manual_seed(0))
    shuffled = replace(inputs, **{k: getattr(inputs, k)[perm] for k in ("weights", "boundary", "normals",
                                                                         "boundary_weights")
                                  if getattr(inputs, k) is not None})
    with torch.no_grad():
        base = model(f, model.prepare(pos, queries, inputs))
        moved = model(f[perm], model.prepare(pos[perm], queries, shuffled))
    torch.testing.assert_close(moved, base, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_saved_and_loaded_gives_the_same_output(name, geometries, tmp_path):
    torch.manual_seed(0)
    facts = DataFacts([pos.double().numpy() for pos, _, _ in geometries], boundary_channels=[1], type_channels=[2])
    model, config = build_model(name, 2, IN, OUT, facts, **TINY[name])
    model.eval()
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "m.safetensors")
    back = model_from_config(config)
    back.load_state_dict(load_file(tmp_path / "m.safetensors"))
    back.eval()
    pos, queries, inputs = geometries[1]
    f = _fields(geometries)[1]
    with torch.no_grad():
        torch.testing.assert_close(back(f, back.prepare(pos, queries, inputs.only(back.takes))),
                                   model(f, model.prepare(pos, queries, inputs.only(model.takes))))


@pytest.mark.parametrize("name", NAMES)
def test_a_model_given_less_than_it_needs_says_so_with_a_typed_error(name, geometries):
    model = _tiny(name, geometries)
    pos, queries, inputs = geometries[0]
    for need in model.takes:  # an optional input has a default; a required one missing is a typed error
        less = replace(inputs.only(model.takes), **{FIELD_OF[need]: None})
        try:
            model.prepare(pos, queries, less)
        except GeoopError as e:  # any other exception fails the test
            assert isinstance(e, MissingInputError) and FIELD_OF[need] in str(e), e


@pytest.mark.parametrize("name", NAMES)
def test_an_option_the_model_does_not_take_is_refused_naming_those_it_does(name, geometries):
    facts = DataFacts([pos.double().numpy() for pos, _, _ in geometries], boundary_channels=[1], type_channels=[2])
    with pytest.raises(GeoopError, match="(?s)takes no option .hiden.*its options are"):
        build_model(name, 2, IN, OUT, facts, **{**TINY[name], "hiden": 8})


# --- a model written outside geoop: one class and one register call, then the command line takes it -------

@dataclass
class ToyPoints(Structure):
    """The toy model's per-geometry structure: points, and the inverse-distance map to the queries."""

    pos: torch.Tensor = rows()
    batch: torch.Tensor = sample_ids()
    to_queries: torch.Tensor | None = blocks()
    query_batch: torch.Tensor | None = sample_ids()
    n_samples: int = total(default=1)


class PointwiseMLP(Operator):
    """u(q) = sum_j w_qj MLP([x_j, f_j]): a network per point, read at the queries by inverse-distance weights."""

    needs = frozenset({Need.WEIGHTS})

    def __init__(self, dim: int, in_channels: int, out_channels: int, hidden: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + in_channels, hidden), nn.GELU(), nn.Linear(hidden, out_channels))

    def prepare(self, pos, queries=None, inputs=NO_INPUTS) -> ToyPoints:
        pos = torch.as_tensor(pos, dtype=torch.float32)
        prepared = ToyPoints(pos, torch.zeros(len(pos), dtype=torch.int64), None, None)
        return self.with_queries(prepared, pos if queries is None else queries, inputs)

    def with_queries(self, prepared, queries, inputs=NO_INPUTS) -> ToyPoints:
        queries = torch.as_tensor(queries, dtype=torch.float32)
        return replace(prepared, to_queries=idw_matrix(prepared.pos.double(), queries.double()).float(),
                       query_batch=torch.zeros(len(queries), dtype=torch.int64))

    def encode(self, f, prepared) -> torch.Tensor:
        f = prepared.pos.new_zeros((len(prepared.pos), 0)) if f is None else f
        return self.net(torch.cat([prepared.pos, f], dim=1))

    def decode(self, state, prepared) -> torch.Tensor:
        return torch.sparse.mm(prepared.to_queries, state)


@pytest.fixture
def toy():
    register("toy_pointwise", class_builder(PointwiseMLP), tiny={"hidden": 8})
    yield "toy_pointwise"
    unregister("toy_pointwise")


def test_the_toy_model_keeps_the_contract(toy, geometries):
    test_a_mixed_batch_equals_each_sample_alone(toy, geometries)
    test_decoding_in_chunks_equals_the_whole_and_the_forward_pass(toy, geometries)
    test_prepare_changes_nothing_on_the_model(toy, geometries)


def test_a_model_registered_outside_geoop_trains_checkpoints_and_predicts_through_the_cli(toy, tmp_path, capsys):
    from geoop.cli import main
    from geoop.data import generate

    data = tmp_path / "data"
    generate("poisson2d", data, n=10, seed=5, workers=1, progress=False)
    run = tmp_path / "run"
    assert main(["train", "--set", f"model.name={toy}", "--set", f"data.root={data}", "--set", "train.epochs=2",
                 "--set", "train.progress=false", "--out", str(run)]) == 0
    assert (run / "model.safetensors").is_file() and '"toy_pointwise"' in (run / "model.json").read_text()
    assert main(["evaluate", "--checkpoint", str(run / "model.safetensors"), "--data", str(data)]) == 0
    sample = sorted((data / "samples").glob("*.npz"))[-1]
    assert main(["predict", "--checkpoint", str(run / "model.safetensors"), "--geometry", str(sample),
                 "--out", str(tmp_path / "pred.vtu")]) == 0
    assert (tmp_path / "pred.vtu").is_file() and "relative L2" in capsys.readouterr().out


def test_a_builder_that_returns_no_operator_is_refused():
    register("not_an_operator", lambda dim, i, o, data, options: (nn.Linear(i, o), options))
    try:
        with pytest.raises(GeoopError, match="not a geoop.models.base.Operator"):
            build_model("not_an_operator", 2, 1, 1)
    finally:
        unregister("not_an_operator")
