"""The GPU check's dry run on the CPU (`--device cpu --quick`), so the script a GPU lease runs cannot rot."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_gpu_check_runs_on_the_cpu_and_its_correctness_checks_hold(tmp_path):
    out = tmp_path / "gpu.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu", "--quick",
                           "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result == json.loads(done.stdout.strip().splitlines()[-1])
    assert result["search"]["radius"]["equal"] and result["search"]["knn"]["equal"]
    assert result["search"]["radius"]["dtype"] == "torch.int64"
    for name in ("fno", "gino", "kdfno", "transolver", "mino", "gnot", "beno", "gnn"):
        assert result["models"][name]["within"] and result["models"][name]["bf16_finite"], (name, result["models"])
    assert result["predict"]["within"] and result["predict_throughput"]["finite"]
    assert "two GPUs" in result["distributed"]["skipped"]
    timed = {k: v for k, v in result["speed"].items() if "skipped" not in v}
    assert {"gino_32^3", "fno_2d (fno_poisson2d)", "transolver_2000"} <= set(timed)
    assert all(v["step_seconds"] > 0 and v["peak_mb"] > 0 for v in timed.values()), timed
    assert result["correct"] is True
