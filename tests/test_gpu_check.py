"""benchmarks/gpu_check.py in its CPU mode (``--tiny``), so the GPU check cannot rot between GPU runs: every run
reports a finite loss and a rate, the compiled pass runs, and the equality check (gloo here, NCCL on GPUs) holds."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_check_tiny_runs_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu_check.json"
    done = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--tiny", "--steps", "3", "--out", str(out),
                           "--device", "cpu"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["runs"]
    assert report["failed"] == 0 and report["skipped"] == 0, runs
    assert {(r["recipe"], r["compile"]) for r in runs} == {("image/simclr.yaml", False), ("image/mae.yaml", False),
                                                           ("image/mae.yaml", True)}
    assert all(r["loss_finite"] and r["samples_per_s"] > 0 and r["steps"] == 3 for r in runs)
    eager, compiled = (next(r for r in runs if r["recipe"] == "image/mae.yaml" and r["compile"] is c)
                       for c in (False, True))
    assert math.isclose(eager["loss_last"], compiled["loss_last"], rel_tol=1e-4)
    equality = report["equality"]["recipes"]["image/simclr.yaml"]
    assert report["equality"]["backend"] == "gloo" and equality["equal_within_1e-5"], equality


def test_every_gpu_variant_is_listed() -> None:
    names = _module().gpu_recipes()
    assert "image/mae.yaml" in names and "image/simclr.yaml" in names
    assert "image/simclr_digits.yaml" not in names  # no gpu variant: nothing to check on a GPU
