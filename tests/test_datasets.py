"""Dataset generation, storage, resumption, loading as PyG batches, import of foreign simulation output."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch_geometric.loader import DataLoader

import geoop
from geoop.data.dataset import SimulationDataset
from geoop.data.importer import import_folder
from geoop.data.manifest import read_manifest
from geoop.errors import CorruptFileError, FieldError, GeoopError, MissingFileError
from tests.conftest import needs_openfoam, run_cavity

pytest.importorskip("gmsh", reason="the generators need gmsh (pip install 'geoop[data]')")
pytest.importorskip("skfem", reason="the generators need scikit-fem (pip install 'geoop[data]')")

from geoop.data import generate  # noqa: E402
from geoop.data.read_options import ReadOptions

TINY = {"poisson2d": dict(n=4), "elasticity2d": dict(n=4, h=0.06),
        "potential3d": dict(n=3, h_body=0.12, h_far=0.8)}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("datasets")
    out = {}
    for name, kw in TINY.items():
        generate(name, root / name, seed=0, workers=2, progress=False, **kw)
        out[name] = root / name
    return out


@pytest.mark.parametrize("name", list(TINY))
def test_families_load_as_variable_size_pyg_batches(datasets, name):
    ds = SimulationDataset(datasets[name], split="all")
    assert len(ds) == TINY[name]["n"]
    batch = next(iter(DataLoader(ds, batch_size=len(ds))))
    sizes = torch.diff(batch.ptr).tolist()
    assert sizes == [ds[i].num_nodes for i in range(len(ds))] and len(set(sizes)) > 1
    assert batch.x.shape == (sum(sizes), ds.input_channels)
    assert batch.y.shape == (sum(sizes), ds.target_channels) and batch.y_mask.shape == batch.y.shape
    assert torch.isfinite(batch.y).all() and batch.pos.shape[1] == (3 if name == "potential3d" else 2)
    assert batch.globals.shape[0] == len(ds)
    for i in range(len(ds)):  # quadrature weights integrate to the domain measure
        g = ds.geometry(i)
        assert float(ds[i].weight.sum()) == pytest.approx(g.measure, rel=1e-5)


def test_manifest_records_provenance_statistics_and_splits(datasets):
    m = read_manifest(datasets["poisson2d"])
    assert m.status == "complete" and m.family == "poisson2d" and m.seed == 0
    assert {"scikit-fem", "gmsh", "numpy", "geoop"} <= set(m.versions)
    ids = sorted(m.splits["train"] + m.splits["val"] + m.splits["test"])
    assert ids == sorted(r["index"] for r in m.samples)
    u = np.concatenate([geoop.load(datasets["poisson2d"] / r["file"]).point_data["u"] for r in m.samples
                        if r["index"] in m.splits["train"]])
    assert m.statistics["u"]["mean"][0] == pytest.approx(u.mean(), rel=1e-9)
    assert m.seconds_per_sample["mean"] > 0 and m.points_per_sample["min"] > 500


def test_potential3d_masks_cp_to_the_body_surface(datasets):
    ds = SimulationDataset(datasets["potential3d"], split="all", targets=["cp"])
    d = ds[0]
    g = ds.geometry(0)
    np.testing.assert_array_equal(d.y_mask[:, 0].numpy(), g.point_data["on_body"])
    assert 0 < d.y_mask.float().mean() < 0.6
    assert g.global_data["cp_min"] < 0 < g.global_data["cp_max"] <= 1


def test_generation_resumes_after_a_kill_and_matches_an_uninterrupted_run(tmp_path):
    reference = tmp_path / "ref"
    generate("elasticity2d", reference, n=5, h=0.06, progress=False)
    interrupted = tmp_path / "int"
    cmd = [sys.executable, "-m", "geoop", "data", "make", "elasticity2d", "--n", "5", "--out", str(interrupted),
           "--set", "h=0.06"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list((interrupted / "samples").glob("*.npz"))) < 2:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((interrupted / "samples").glob("*.npz")))
    assert 2 <= done < 5
    assert read_manifest(interrupted).status == "incomplete"
    generate("elasticity2d", interrupted, n=5, h=0.06, progress=False)
    pairs = zip(sorted((reference / "samples").glob("*.npz")), sorted((interrupted / "samples").glob("*.npz")),
                strict=True)
    for a, b in pairs:
        ga, gb = geoop.load(a), geoop.load(b)
        np.testing.assert_array_equal(ga.points, gb.points)
        np.testing.assert_array_equal(ga.point_data["von_mises"], gb.point_data["von_mises"])
    assert read_manifest(interrupted).splits == read_manifest(reference).splits


def test_a_folder_with_another_dataset_is_not_touched(datasets, tmp_path):
    target = tmp_path / "p"
    shutil.copytree(datasets["poisson2d"], target)
    before = {p.name: p.read_bytes() for p in (target / "samples").iterdir()}
    with pytest.raises(GeoopError, match="different dataset"):
        generate("poisson2d", target, n=4, seed=1, progress=False)
    assert {p.name: p.read_bytes() for p in (target / "samples").iterdir()} == before


def test_broken_manifest_and_missing_or_bad_samples_are_named(datasets, tmp_path):
    target = tmp_path / "p"
    shutil.copytree(datasets["poisson2d"], target)
    first = read_manifest(target).samples[0]["file"]
    (target / first).unlink()
    ds = SimulationDataset(target, split="all")
    with pytest.raises(MissingFileError, match="sample_000000"):
        ds[0]
    g = ds.geometry(1)
    bad = g.point_data["u"].copy()
    bad[5] = np.nan
    g.with_point_data(u=bad).save(ds.files[1])
    with pytest.raises(FieldError, match="'u' has 1 NaN"):
        SimulationDataset(target, split="all", cache=False)[1]
    (target / "manifest.json").write_text("{ not json")
    with pytest.raises(CorruptFileError, match="manifest.json"):
        SimulationDataset(target)


def test_unknown_fields_and_splits_are_refused(datasets):
    with pytest.raises(FieldError, match="pressure"):
        SimulationDataset(datasets["poisson2d"], targets=["pressure"])
    with pytest.raises(GeoopError, match="no split"):
        SimulationDataset(datasets["poisson2d"], split="holdout")


def test_subsampling_draws_new_points_each_epoch_and_keeps_the_integral(datasets):
    ds = SimulationDataset(datasets["poisson2d"], split="all", subsample=300)
    a = ds[0]
    ds.set_epoch(1)
    b = ds[0]
    assert a.num_nodes == b.num_nodes == 300
    assert not torch.equal(a.pos, b.pos)
    full = SimulationDataset(datasets["poisson2d"], split="all")[0]
    assert float(a.weight.sum()) == pytest.approx(float(full.weight.sum()), rel=1e-5)


def test_import_a_folder_of_vtu_files(tmp_path):
    src = tmp_path / "runs"
    src.mkdir()
    from tests.conftest import box_hexes

    for i in range(3):
        g = box_hexes(3 + i)
        p = g.points
        g.with_point_data(temperature=p[:, 0] * (i + 1), heat_flux=p * i).save(src / f"run{i}.vtu")
    manifest = import_folder(src, tmp_path / "ds", inputs=["heat_flux"], targets=["temperature"], progress=False)
    assert len(manifest.samples) == 3
    ds = SimulationDataset(tmp_path / "ds", split="all")
    assert ds.input_channels == 3 and ds.target_channels == 1
    d = ds[2]
    np.testing.assert_allclose(d.y[:, 0].numpy(), 3 * d.pos[:, 0].numpy(), rtol=1e-6)


def test_import_names_a_missing_field_before_writing_anything(tmp_path):
    src = tmp_path / "runs"
    src.mkdir()
    from tests.conftest import box_hexes

    box_hexes(2).with_point_data(T=np.zeros(27)).save(src / "a.vtu")
    with pytest.raises(FieldError, match="(?s)no field 'pressure'.*'T'"):
        import_folder(src, tmp_path / "ds", inputs=[], targets=["pressure"], progress=False)
    assert not (tmp_path / "ds").exists()


def test_import_averages_cell_data_onto_points_when_asked(tmp_path):
    from tests.conftest import box_hexes

    g = box_hexes(3)
    g = geoop.Geometry(g.points, g.cells, cell_data={"p": {"hexahedron": np.full(27, 2.5)}})
    g.save(tmp_path / "a.vtu")
    with pytest.raises(FieldError, match="--cell-to-point"):
        import_folder(tmp_path / "a.vtu", tmp_path / "ds", [], ["p"], progress=False)
    import_folder(tmp_path / "a.vtu", tmp_path / "ds2", [], ["p"], ReadOptions(cell_to_points=True), progress=False)
    np.testing.assert_allclose(SimulationDataset(tmp_path / "ds2", split="all")[0].y.numpy(), 2.5)


@needs_openfoam
def test_openfoam_cavity_results_import_as_a_dataset(tmp_path):
    runs = tmp_path / "runs"
    for lid in (1, 2):
        case = run_cavity(tmp_path / f"cavity{lid}", lid, then="foamToVTK -latestTime")
        (runs / f"lid{lid}").mkdir(parents=True)
        shutil.copy(next(case.glob("VTK/*/internal.vtu")), runs / f"lid{lid}" / "internal.vtu")
    import_folder(runs, tmp_path / "ds", inputs=[], targets=["p", "U"], progress=False)
    ds = SimulationDataset(tmp_path / "ds", split="all")
    assert len(ds) == 2 and ds.target_channels == 4
    speeds = [float(ds[i].y[:, 1:].norm(dim=1).max()) for i in range(2)]
    assert speeds[1] == pytest.approx(2 * speeds[0], rel=0.2)  # the faster lid drives a faster flow
    info = json.loads((tmp_path / "ds" / "manifest.json").read_text())
    assert info["family"] == "imported" and info["solver"] == "external"


def test_potential3d_accepts_closed_surface_files_as_bodies(tmp_path):
    import trimesh

    body = trimesh.creation.capsule(height=1.0, radius=0.3, count=[24, 12])
    body.export(tmp_path / "capsule.stl")
    m = generate("potential3d", tmp_path / "ds", n=1, shapes=(), surface_files=(str(tmp_path / "capsule.stl"),),
                 h_body=0.12, h_far=0.8, progress=False)
    g = geoop.load(tmp_path / "ds" / m.samples[0]["file"])
    assert g.point_data["on_body"].sum() > 30 and np.isfinite(g.point_data["velocity"]).all()


def test_samples_that_cannot_be_made_are_reported_not_hung_on(tmp_path):
    import trimesh

    open_surface = trimesh.creation.icosphere(2)
    open_surface.update_faces(np.arange(len(open_surface.faces)) > 10)
    open_surface.export(tmp_path / "open.stl")
    with pytest.raises(GeoopError, match="(?s)all failed.*not closed"):
        generate("potential3d", tmp_path / "ds", n=2, shapes=(), surface_files=(str(tmp_path / "open.stl"),),
                 progress=False)
    failures = read_manifest(tmp_path / "ds").failures
    assert len(failures) >= 10 and "not closed" in failures[0]["reason"]


def test_missing_solver_stack_is_reported_with_the_install_command(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gmsh" else real(name, *a))
    with pytest.raises(GeoopError, match=r"(?s)needs gmsh.*geoop\[data\]"):
        generate("poisson2d", tmp_path / "ds", n=1, progress=False)
    assert not (tmp_path / "ds").exists()


def test_a_corrupted_manifest_is_rebuilt_from_the_sample_files(datasets, tmp_path):
    target = tmp_path / "p"
    shutil.copytree(datasets["poisson2d"], target)
    before = {p.name: p.read_bytes() for p in (target / "samples").iterdir()}
    (target / "manifest.json").write_text('{"format": "geoop-dat')  # damaged outside geoop (writes are atomic)
    m = generate("poisson2d", target, n=4, progress=False)
    assert m.status == "complete" and len(m.samples) == 4
    assert {p.name: p.read_bytes() for p in (target / "samples").iterdir()} == before  # nothing remade


def test_the_manifest_is_typed_and_keeps_what_it_does_not_know(datasets, tmp_path):
    from geoop.data.manifest import Manifest

    raw = json.loads((datasets["poisson2d"] / "manifest.json").read_text())
    m = Manifest.from_dict(raw)
    assert m.to_dict() == raw and m.family == "poisson2d" and m.specs["u"]["components"] == 1
    assert set(m.files) == {r["index"] for r in raw["samples"]}
    # a manifest from an older or newer-minor writer: optional keys missing, an unknown one kept on rewrite
    old = {k: v for k, v in raw.items() if k not in ("statistics", "points_per_sample", "unconverged")}
    old["made_by"] = "someone else"
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "manifest.json").write_text(json.dumps(old))
    again = read_manifest(tmp_path / "old")
    assert again.statistics is None and again.extra == {"made_by": "someone else"}
    again.write(tmp_path / "old")
    assert json.loads((tmp_path / "old" / "manifest.json").read_text()) == old
    with pytest.raises(CorruptFileError, match="newer"):
        Manifest.from_dict({**raw, "version": 99})
