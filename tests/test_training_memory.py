"""Training memory: the on-disk store of prepared structures (exact round trips for every model, int32 indices
on disk, entries of a changed sample or a damaged file never read back), the heap trimmer's rule and the
restart with the small-chunk cache off."""
from __future__ import annotations

import dataclasses
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from geoop.decomposition.kdtree import KDTreeDecomposition
from geoop.models.attention_operators import MINO
from geoop.models.base import SampleInputs
from geoop.models.beno import BENO
from geoop.models.gino import GINO
from geoop.models.kdfno import KDFNO
from geoop.models.transolver import Transolver
from geoop import heap as memory
from geoop.training.prepared_store import PreparedStore


def _kdfno() -> KDFNO:
    tree = KDTreeDecomposition(n_subdomains=2).fit(np.random.default_rng(0).uniform(-1, 1, (400, 2)))
    return KDFNO(tree, 1, 1, hidden=8, modes=4, n_layers=1, use_sdf=False)


MODELS = {
    "gino": lambda: GINO(2, 1, 1, resolution=8, hidden=8, modes=4, n_layers=1, use_sdf=True, in_radius=0.3,
                         out_radius=0.3),
    "transolver": lambda: Transolver(2, 1, 1, hidden=16, layers=1, heads=2, slices=4, use_sdf=True),
    "mino": lambda: MINO(2, 1, 1, tokens_per_axis=4, hidden=16, layers=1, use_sdf=True),
    "beno": lambda: BENO(2, 2, 1, boundary_channels=[1], hidden=16, layers=1),
    "kdfno": _kdfno,
}


def _same(a, b) -> None:
    assert type(a) is type(b)
    if torch.is_tensor(a):
        if a.is_sparse:
            a, b = a.coalesce(), b.coalesce()
            assert b.is_sparse and torch.equal(a.indices(), b.indices()) and torch.equal(a.values(), b.values())
        else:
            assert a.dtype == b.dtype and torch.equal(a, b)
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _same(getattr(a, f.name), getattr(b, f.name))
    else:
        assert a == b


@pytest.mark.parametrize("name", sorted(MODELS))
def test_a_stored_structure_comes_back_exactly(name, tmp_path):
    model = MODELS[name]()
    pos = torch.rand(150, 2) * 2 - 1
    boundary = pos.abs().max(1).values > 0.85
    prepared = model.prepare(pos, torch.rand(40, 2) * 2 - 1, SampleInputs(
        boundary=boundary, normals=torch.zeros(150, 2), sdf_fn=lambda p: 0.9 - np.abs(p).max(1)))
    source = tmp_path / "sample.npz"
    source.write_bytes(b"x")
    store = PreparedStore(tmp_path / "store")
    store.put(3, source, prepared)
    back = store.get(3, source)
    _same(prepared, back)
    f = torch.rand(150, 2 if name == "beno" else 1)
    torch.testing.assert_close(model(f, back), model(f, prepared))
    on_disk = load_file(store.path(3))
    assert not any(t.dtype == torch.int64 for t in on_disk.values())  # indices are int32 on disk


def test_a_changed_sample_or_a_damaged_entry_is_prepared_again(tmp_path):
    model = MODELS["gino"]()
    prepared = model.prepare(torch.rand(50, 2), inputs=SampleInputs(sdf_fn=lambda p: np.ones(len(p))))
    source = tmp_path / "sample.npz"
    source.write_bytes(b"first")
    store = PreparedStore(tmp_path / "store")
    store.put(0, source, prepared)
    assert store.get(0, source) is not None
    source.write_bytes(b"second version")
    assert store.get(0, source) is None
    store.put(0, source, prepared)
    store.path(0).write_bytes(b"not a safetensors file")
    assert store.get(0, source) is None and store.get(1, source) is None


def test_the_heap_is_trimmed_only_past_the_margin_over_the_working_peak(monkeypatch):
    resident = iter([150, 170, 260, 280, 120, 200, 215, 301])  # MB after each step
    monkeypatch.setattr(memory, "resident_bytes", lambda: next(resident) * 2**20)
    trimmer = memory.HeapTrimmer(margin=100 * 2**20, window=2)
    calls = []
    if trimmer._trim is None:
        pytest.skip("no glibc malloc_trim here")
    trimmer._trim = lambda pad: calls.append(pad)
    for _ in range(8):
        trimmer()
    # 150, 170: the working peak (170); 260: within 100 of it; 280: trim; 120, 200: the new peak (200);
    # 215: within; 301: trim
    assert len(calls) == 2 and trimmer.trims == 2


def test_the_quiet_heap_tunable_joins_the_others_and_replaces_an_earlier_cache_setting():
    env = memory.with_quiet_heap({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7:glibc.malloc.arena_max=2",
                                  "HOME": "/x"})
    assert env["GLIBC_TUNABLES"] == f"glibc.malloc.arena_max=2:{memory.QUIET_HEAP}" and env["HOME"] == "/x"
    assert memory.with_quiet_heap({})["GLIBC_TUNABLES"] == memory.QUIET_HEAP


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the tunable is glibc's")
def test_the_program_restarts_once_with_the_small_chunk_cache_off():
    code = ("import os; from geoop.heap import restart_with_quiet_heap; print('run'); "
            "restart_with_quiet_heap(); print(os.environ['GLIBC_TUNABLES'])")
    env = {k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert done.stdout.split() == ["run", "run", memory.QUIET_HEAP]  # the first run replaced, the second kept


def test_structures_prepared_by_other_code_are_not_read_back(tmp_path, monkeypatch):
    """The store's key carries a hash of geoop's source files, so an edited or upgraded geoop (same version
    number) prepares again instead of reading structures of another layout or meaning."""
    import geoop
    from geoop.training import prepared_store

    package = tmp_path / "geoop"
    (package / "models").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "models" / "kdfno.py").write_text("GRID = 1\n")
    monkeypatch.setattr(geoop, "__file__", str(package / "__init__.py"))
    prepared_store._code_hash.cache_clear()
    before = prepared_store._code_hash()
    (package / "models" / "kdfno.py").write_text("GRID = 2\n")
    prepared_store._code_hash.cache_clear()
    assert prepared_store._code_hash() != before
    prepared_store._code_hash.cache_clear()
