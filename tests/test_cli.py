"""The `geoop` command line: info, convert, demo, and errors as messages (exit 2), not tracebacks."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import geoop
from geoop.cli import main

MESHES = Path(__file__).resolve().parents[1] / "meshes"


def test_info_prints_the_summary(capsys):
    assert main(["info", str(MESHES / "plate_with_holes.msh")]) == 0
    out = capsys.readouterr().out
    assert "volume (2D)" in out and "triangle: 2701" in out and "watertight" in out


def test_info_json_is_machine_readable(capsys):
    assert main(["info", "--json", str(MESHES / "heat_sink.stl")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "surface" and info["watertight"] is True and info["cells"]["triangle"] > 1000


def test_convert_keeps_points_and_fields(tmp_path, capsys):
    out = tmp_path / "naca.npz"
    assert main(["convert", str(MESHES / "naca0012.vtu"), str(out)]) == 0
    a, b = geoop.load(MESHES / "naca0012.vtu", sort=False), geoop.load(out, sort=False)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.point_data["wall_distance"], b.point_data["wall_distance"])


def test_bad_input_is_a_message_and_exit_code_2(tmp_path, capsys):
    assert main(["info", str(tmp_path / "missing.stl")]) == 2
    err = capsys.readouterr().err
    assert "missing.stl" in err and "no such file" in err and "Traceback" not in err


def test_gallery_writes_a_picture_a_vtu_and_a_summary_per_geometry(tmp_path):
    out = tmp_path / "gallery"
    assert main(["gallery", "--out", str(out)]) == 0
    rows = json.loads((out / "summary.json").read_text())
    names = {Path(r["source"]).name for r in rows}
    assert names == {p.name for p in MESHES.iterdir() if p.suffix != ".py"}
    for r in rows:
        assert Path(r["png"]).stat().st_size > 10_000
        assert geoop.load(r["vtu"]).n_points == r["points"]


def test_main_job_makes_data_trains_and_predicts_at_unseen_points(tmp_path):
    """The README's first command, shrunk (24 samples, 2 epochs): every output it promises is written."""
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n", "24", "--epochs", "2"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["held_out"]["query_points"] == 5000 and np.isfinite(metrics["held_out"]["rel_l2_at_queries"])
    cloud = geoop.load(out / "held_out_queries.vtu")
    recomputed = np.linalg.norm(cloud.point_data["error"]) / np.linalg.norm(cloud.point_data["u"])
    assert metrics["held_out"]["rel_l2_at_queries"] == pytest.approx(recomputed, rel=1e-4)  # what the file shows
    assert {"u", "u_predicted", "error"} <= set(cloud.point_data) and cloud.n_points == 5000
    assert geoop.load(out / "held_out_mesh.vtu").kind == "volume"
    for png in ("held_out.png", "run/training.png"):
        assert (out / png).stat().st_size > 10_000
    assert geoop.load_model(out / "run").fields.targets == ("u",)


def test_module_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "geoop", "--version"], capture_output=True, text=True)
    assert done.returncode == 0 and "geoop" in done.stdout


def test_example_meshes_are_reproduced_by_their_script(tmp_path):
    pytest.importorskip("gmsh", reason="the mesh script needs gmsh (pip install 'geoop[data]')")
    subprocess.run([sys.executable, str(MESHES / "make_meshes.py"), "--out", str(tmp_path)], check=True)
    for f in MESHES.iterdir():
        if f.suffix != ".py":
            assert geoop.load(tmp_path / f.name).n_points == geoop.load(f).n_points
