"""Data-parallel training on torch.distributed (gloo on loopback): two processes end where one process over
the same global batches ends, and a rank that dies ends the job with an error instead of a hang."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from geoop.data import generate
from geoop.training.batching import batch_plan, shard_samples
from geoop.training.checkpoint import load_checkpoint
from tests.test_training import TINY


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp") / "data"
    generate("poisson2d", root, n=14, seed=5, workers=2, progress=False)
    return root


def _train_args(data: Path, out: Path, epochs: int, *extra: str) -> list[str]:
    args = [sys.executable, "-m", "geoop", "train", "--out", str(out), "--set", f"data.root={data}",
            "--set", f"train.epochs={epochs}", "--set", "train.batch_size=2"]
    for item in TINY + list(extra):
        args += ["--set", item]
    return args


def test_shards_balance_points_and_the_plan_covers_every_sample_once_per_epoch():
    sizes = np.random.default_rng(1).integers(200, 2000, 37).tolist()
    shards = shard_samples(sizes, 3)
    loads = [sum(sizes[i] for i in s) for s in shards]
    assert max(loads) - min(loads) <= max(sizes)
    plan = batch_plan(sizes, 4, None, seed=0, epoch=2, n_shards=3)
    seen = sorted(i for step in plan for part in step for i in part)
    assert seen == list(range(37))
    for step in plan:  # every shard only ever contributes its own samples
        for k, part in enumerate(step):
            assert set(part) <= set(shards[k])


def test_two_gloo_processes_end_with_the_parameters_of_one_process(small, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = subprocess.run(_train_args(small, tmp_path / "one", 2, "train.shards=2"), env=env,
                         capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(_train_args(small, tmp_path / "two", 2) + ["--nproc", "2"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    w1, meta1, _ = load_checkpoint(tmp_path / "one" / "last.safetensors")
    w2, meta2, _ = load_checkpoint(tmp_path / "two" / "last.safetensors")
    assert w1.keys() == w2.keys()
    for k in w1:
        torch.testing.assert_close(w2[k], w1[k], rtol=1e-4, atol=1e-6)
    h1, h2 = meta1["history"], meta2["history"]
    np.testing.assert_allclose([h["train_loss"] for h in h2], [h["train_loss"] for h in h1], rtol=1e-5)
    np.testing.assert_allclose([h["val_rel_l2"] for h in h2], [h["val_rel_l2"] for h in h1], rtol=1e-5)
    assert json.loads((tmp_path / "two" / "test_metrics.json").read_text())["samples"] > 0


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [e.split(b"=", 1)[1] for e in env if e.startswith(b"RANK=")]
    return int(ranks[0]) if ranks else None


def test_a_rank_that_dies_ends_the_job_with_an_error(small, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / "dies"
    proc = subprocess.Popen(_train_args(small, out, 200) + ["--nproc", "2"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out / "metrics.jsonl").exists():
        time.sleep(0.1)
    assert (out / "metrics.jsonl").exists(), "training did not start"
    workers = [p for agent in _children(proc.pid) for p in _children(agent)]
    victim = next(p for p in workers if _rank_of(p) == 1)
    os.kill(victim, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)  # not a hang: the job ends soon after
    assert proc.returncode == 2
    assert "distributed training failed" in err and "rerun the same command" in err


@pytest.mark.parametrize("name", ["gino", "kdfno", "beno", "gnn", "mino", "gnot", "transolver"])
def test_every_model_gives_every_parameter_a_gradient(name):
    """DistributedDataParallel needs every parameter in every step's graph, also for a geometry without
    boundary points."""
    from geoop.models.base import SampleInputs
    from geoop.models.registry import TINY, DataFacts, build_model

    torch.manual_seed(0)
    pos = torch.rand(120, 2) * 2 - 1
    model, _ = build_model(name, 2, 3, 1, DataFacts([pos.numpy()], [1], [2]), **TINY[name])
    sdf = lambda q: np.abs(q).max(axis=1) - 1  # noqa: E731  the square's signed distance
    for boundary in (pos.abs().max(dim=1).values > 0.9, torch.zeros(120, dtype=torch.bool)):
        if name in ("beno", "gnn") and not boundary.any():
            continue  # these need boundary nodes by construction
        model.zero_grad()
        prepared = model.prepare(pos, inputs=SampleInputs(weights=torch.full((120,), 1 / 120), sdf_fn=sdf,
                                                          boundary=boundary, normals=torch.sign(pos)))
        model(torch.rand(120, 3), prepared).sum().backward()
        assert [n for n, p in model.named_parameters() if p.grad is None] == []
