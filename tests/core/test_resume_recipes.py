"""Kill with SIGKILL mid-run, resume, and get the uninterrupted run's per-step losses exactly — for objectives with
state beyond the weights: MoCo's queue, DINO's centre and EMA teacher, and a non-image recipe (TS2Vec)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnissl.train.runner import read_metrics

ROOT = Path(__file__).resolve().parents[2]
COMMON = ["train.steps=8", "train.checkpoint_every=2", "train.log_every=1", "train.knn_every=0",
          "train.max_minutes=null", "train.warmup_steps=2"]
CASES = {
    "moco_v2_queue": ("recipes/image/moco_v2.yaml", [
        "data.max_train=256", "encoder.width=8", "objective.hidden_dim=32", "objective.projection_dim=16",
        "objective.queue_size=64", "train.batch_size=16"]),
    "dino_centre": ("recipes/image/dino.yaml", [
        "data.max_train=256", "encoder.width=8", "objective.out_dim=64", "objective.hidden_dim=32",
        "objective.bottleneck_dim=16", "objective.teacher_temp=0.07", "objective.warmup_teacher_steps=4",
        "train.batch_size=8"]),
    "ts2vec_timeseries": ("recipes/timeseries/ts2vec.yaml", [
        "encoder.hidden_dim=16", "encoder.output_dim=32", "encoder.depth=3"]),
}


def _train(recipe: str, run: Path, overrides: list[str], root: Path, *, resume: bool = False) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "omnissl.cli.main", "train", recipe, "--run-dir", str(run), "--no-eval",
            "--data-root", str(root), *overrides]
    return subprocess.Popen(args + (["--resume"] if resume else []), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env={**os.environ})


@pytest.mark.parametrize("case", list(CASES))
def test_sigkill_and_resume_reproduce_the_losses(case: str, tmp_path: Path, data_root: Path) -> None:
    recipe, extra = CASES[case]
    overrides = [*COMMON, *extra]
    reference = _train(recipe, tmp_path / "ref", overrides, data_root)
    assert reference.wait(timeout=600) == 0, reference.stderr.read() if reference.stderr else ""
    expected = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "ref") if "loss" in r}
    assert sorted(expected) == list(range(1, 9))

    run = tmp_path / "killed"
    process = _train(recipe, run, overrides, data_root)
    deadline = time.time() + 600
    while not (run / "checkpoints" / "step_00000004.pt").exists():
        assert process.poll() is None and time.time() < deadline, "training ended before step 4"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    resumed = _train(recipe, run, overrides, data_root, resume=True)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read() if resumed.stderr else ""
    got = {r["step"]: r["loss"] for r in read_metrics(run) if "loss" in r}
    assert sorted(got) == list(range(1, 9))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-6, abs=1e-7), f"{case}: step {step}"
