"""Training while the solver runs: the replay buffer's policies, design selection, and a tiny online run on
poisson2d with two solver workers that is killed and resumed (the solver never waits, every sample lands in
the dataset folder, the model learns)."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from geoop.data.dataset import SimulationDataset
from geoop.data.families import get_family
from geoop.data.manifest import read_manifest
from geoop.errors import GeoopError
from geoop.training.config import load_config
from geoop.training.online import ReplayBuffer, train_online
from geoop.training.selection import farthest

ROOT = Path(__file__).resolve().parents[1]


def test_fifo_keeps_the_newest_and_reservoir_a_uniform_sample():
    fifo = ReplayBuffer(3, "fifo", seed=0)
    left = [fifo.add(i) for i in range(5)]
    assert fifo.positions == [2, 3, 4] and left == [None, None, None, 0, 1]
    # algorithm R: after 400 offers every item is kept with probability 40/400, early or late alike
    kept = np.zeros(400)
    for seed in range(300):
        reservoir = ReplayBuffer(40, "reservoir", seed=seed)
        for i in range(400):
            reservoir.add(i)
        assert len(reservoir.positions) == 40 and len(set(reservoir.positions)) == 40
        kept[reservoir.positions] += 1
    rate = kept / 300
    assert abs(rate[:200].mean() - 0.1) < 0.01 and abs(rate[200:].mean() - 0.1) < 0.01


def test_diversity_picks_the_candidate_in_the_emptiest_region():
    space = get_family("airfoil2d").designs
    made = space.draw_many([0, 0], 30)
    candidates = space.draw_many([0, 1], 8)
    z, seen = space.coordinates(candidates), space.coordinates(made)
    gaps = [min(np.linalg.norm(a - b) for b in seen) for a in z]
    assert farthest(space, candidates, made) == int(np.argmax(gaps))
    assert farthest(space, candidates, []) == 0
    # the family's own draw and an explicit design give the same sample parameters
    assert space.draw_many([3, 4], 2) == space.draw_many([3, 4], 2)


def test_selection_that_needs_designs_or_a_variance_head_is_refused(tmp_path):
    base = ["online.family=poisson2d", "train.clock=wall", "train.budget=10", f"data.root={tmp_path / 'd'}",
            f"out={tmp_path / 'r'}"]
    with pytest.raises(GeoopError, match="only random selection"):
        train_online(load_config("fno_poisson2d", base + ["online.select=diversity"]))
    with pytest.raises(GeoopError, match="variance"):
        train_online(load_config("fno_airfoil2d", [*base[1:], "online.family=airfoil2d",
                                                   "online.select=uncertainty"]))
    with pytest.raises(GeoopError, match="wall seconds"):
        train_online(load_config("fno_poisson2d", base[:1] + base[2:]))


def _constant_error(root: Path) -> float:
    """Mean relative L2 on the validation split of predicting the training samples' mean value everywhere."""
    train, val = SimulationDataset(root, "train"), SimulationDataset(root, "val")
    mean = float(np.mean([train[i].y.numpy().mean() for i in range(len(train))]))
    errors = []
    for i in range(len(val)):
        y, w = val[i].y.numpy()[:, 0], val[i].weight.numpy()
        errors.append(np.sqrt((w * (y - mean) ** 2).sum() / (w * y**2).sum()))
    return float(np.mean(errors))


def test_a_killed_online_run_resumes_and_learns(tmp_path):
    data, run = tmp_path / "data", tmp_path / "run"
    settings = ["train.budget=30", "online.val=4", "online.min_samples=4", "online.options.h=0.08",
                "online.validate_every=4", "train.progress=false", f"data.root={data}"]
    cmd = [sys.executable, "-m", "geoop", "train", "--online", "poisson2d", "--config", "fno_poisson2d",
           "--workers", "2", "--out", str(run)] + [a for s in settings for a in ("--set", s)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").is_file() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert killed and killed[-1]["wall_seconds"] < 30
    time.sleep(3)  # the workers notice their parent is gone and stop (with the sample they were making)
    files = sorted((data / "samples").glob("sample_*.npz"))
    time.sleep(2)
    assert sorted((data / "samples").glob("sample_*.npz")) == files, "workers outlived the killed run"

    config = load_config("fno_poisson2d", [*settings, "online.family=poisson2d", "online.workers=2",
                                           "train.clock=wall", f"out={run}"])
    result = train_online(config)
    history = result["history"]
    assert history[:len(killed)] == killed  # the same run, continued
    assert history[-1]["wall_seconds"] >= 30 and history[-1]["samples"] > killed[-1]["samples"]
    # the solver never waited for the trainer (a worker's wait between samples is the queue's round trip)
    assert result["solver_idle_seconds"] < 2.0
    # every sample made is in the dataset folder and its manifest, once, and the folder is a dataset
    manifest = read_manifest(data)
    on_disk = {int(p.stem.split("_")[1]) for p in (data / "samples").glob("sample_*.npz")}
    assert manifest.status == "complete" and on_disk == {r["index"] for r in manifest.samples}
    assert len(manifest.splits["val"]) == 4 and not set(manifest.splits["val"]) & set(manifest.splits["train"])
    assert result["samples"] == len(manifest.splits["train"]) >= 8
    # it learned: well below predicting the training mean everywhere
    assert history[-1]["val_rel_l2"] < 0.6 * _constant_error(data)


SOLVER = '''"""A user's solver: u = a sin(pi x) + b y^2 on a triangulated square, as VTU in the folder argv[3]."""
import sys
import meshio
import numpy as np
a, b, out = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
x, y = np.meshgrid(np.linspace(0, 1, 12), np.linspace(0, 1, 12))
points = np.c_[x.ravel(), y.ravel(), np.zeros(x.size)]
quads = [(k, k + 1, k + 13, k + 12) for k in range(132) if k % 12 != 11]
triangles = [t for q in quads for t in ((q[0], q[1], q[3]), (q[1], q[2], q[3]))]
u = a * np.sin(np.pi * points[:, 0]) + b * points[:, 1] ** 2
meshio.write(out + "/result.vtu", meshio.Mesh(points, [("triangle", np.array(triangles))], point_data={"u": u}))
'''


def test_online_training_runs_a_users_solver_command(tmp_path):
    script = tmp_path / "solve.py"
    script.write_text(SOLVER)
    data = tmp_path / "data"
    config = load_config("fno_poisson2d", [
        "online.family=command", f"online.command={sys.executable} {script} {{a}} {{b}} {{out}}",
        "online.parameters={a: [-1, 1], b: [0, 2]}", "online.result=result.vtu", "data.targets=[u]",
        "online.val=3", "online.min_samples=3", "online.validate_every=5", "train.budget=25", "train.clock=wall",
        "train.progress=false", f"data.root={data}", f"out={tmp_path / 'run'}"])
    result = train_online(config)
    manifest = read_manifest(data)
    # the parameters became constant inputs, the fields' sizes came from the first result
    assert manifest.dim == 2 and set(manifest.fields["inputs"]) == {"a", "b"}
    assert manifest.fields["targets"]["u"]["components"] == 1
    sample = SimulationDataset(data, "train").geometry(0)
    a, b = float(sample.global_data["a"]), float(sample.global_data["b"])
    assert -1 <= a <= 1 and np.allclose(sample.point_data["a"], a)
    assert np.allclose(sample.point_data["u"], a * np.sin(np.pi * sample.points[:, 0]) + b * sample.points[:, 1] ** 2)
    assert result["history"][-1]["val_rel_l2"] < 0.6 * _constant_error(data)
    # a command that fails says so, with what it printed
    bad = tmp_path / "bad"
    broken = dataclasses.replace(config, online=dataclasses.replace(config.online, command="echo cannot mesh; exit 3"),
                                 data=dataclasses.replace(config.data, root=str(bad)), out=str(tmp_path / "bad_run"))
    with pytest.raises(GeoopError, match="first 11 samples all failed.*exit status 3.*cannot mesh"):
        train_online(broken)
