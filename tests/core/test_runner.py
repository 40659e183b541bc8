"""The runner end to end: real data, checkpoints, exact resume after SIGKILL, run-directory safety, DDP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import recipe_from_dict
from omnissl.core.errors import ConfigError, RunDirectoryError
from omnissl.train.runner import Trainer, read_metrics

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["encoder.width=8", "objective.hidden_dim=32", "objective.projection_dim=16", "train.batch_size=32",
        "train.log_every=1", "train.warmup_steps=2"]


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "omnissl.cli.main", *args], capture_output=True, text=True,
                          cwd=ROOT, env={**os.environ, **(env or {})}, timeout=300)


def _recipe(data_root: Path, **train: object) -> object:
    raw = {"name": "smoke", "data": {"name": "cifar10", "max_train": 256},
           "encoder": {"name": "resnet10", "width": 8},
           "augment": {"global": {"ops": [{"name": "random_resized_crop", "scale": [0.3, 1.0]},
                                          {"name": "horizontal_flip"}, {"name": "color_jitter"}]}},
           "objective": {"name": "simclr", "hidden_dim": 32, "projection_dim": 16},
           "train": {"steps": 4, "batch_size": 32, "log_every": 1, "checkpoint_every": 2, **train}}
    return recipe_from_dict(raw)


def test_runner_trains_on_real_cifar_and_writes_its_records(tmp_path: Path, data_root: Path) -> None:
    assembled = assemble(_recipe(data_root, monitor_every=2, knn_every=4, knn_samples=64), root=data_root)
    result = Trainer(assembled, tmp_path / "run").fit()
    assert result.steps_done == 4
    records = read_metrics(tmp_path / "run")
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 4 and all(l == l and l > 0 for l in losses)
    assert any("collapse/effective_rank" in r for r in records)
    assert any("knn_top1_k20" in r for r in records)
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["best.pt", "step_00000002.pt", "step_00000004.pt"]  # best: by the k-NN monitor
    assert (tmp_path / "run" / "recipe.yaml").is_file()


def test_cpu_time_budget_stops_the_run_and_saves_a_checkpoint(tmp_path: Path, data_root: Path) -> None:
    # 0.002 CPU-minutes (0.12 s) is spent by the first step of even this tiny model, so the run stops after one
    # step, with a checkpoint, instead of running its 1000 planned steps.
    assembled = assemble(_recipe(data_root, steps=1000, max_cpu_minutes=0.002, checkpoint_every=0), root=data_root)
    result = Trainer(assembled, tmp_path / "run").fit()
    assert result.stopped_because == "time budget"
    assert 1 <= result.steps_done < 1000
    assert result.cpu_seconds >= 0.12
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == [f"step_{result.steps_done:08d}.pt"]


def test_channels_last_changes_the_conv_weight_layout_not_the_losses(tmp_path: Path, data_root: Path) -> None:
    losses = {}
    for layout in (False, True):
        trainer = Trainer(assemble(_recipe(data_root, steps=2, channels_last=layout), root=data_root),
                          tmp_path / f"run-{layout}")
        convs = [p for p in trainer.objective.parameters() if p.dim() == 4]
        channels_last = [p.is_contiguous(memory_format=torch.channels_last) for p in convs]
        assert all(channels_last) if layout else not all(channels_last)  # 1×1 kernels are both layouts at once
        trainer.fit()
        losses[layout] = [r["loss"] for r in read_metrics(tmp_path / f"run-{layout}") if "loss" in r]
    assert losses[True] == pytest.approx(losses[False], rel=1e-3)


def test_existing_run_directory_is_never_overwritten(tmp_path: Path, data_root: Path) -> None:
    run = tmp_path / "run"
    Trainer(assemble(_recipe(data_root, steps=2), root=data_root), run).fit()
    before = (run / "checkpoints" / "step_00000002.pt").read_bytes()
    with pytest.raises(RunDirectoryError, match="already exists"):
        Trainer(assemble(_recipe(data_root, steps=2), root=data_root), run)
    assert (run / "checkpoints" / "step_00000002.pt").read_bytes() == before


def test_resume_with_a_changed_recipe_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    done = _cli("train", str(DEMO), "--run-dir", str(run), "--no-eval", "train.steps=2", *TINY)
    assert done.returncode == 0, done.stderr
    changed = _cli("train", str(DEMO), "--run-dir", str(run), "--resume", "train.steps=4", *TINY,
                   "objective.temperature=0.9")
    assert changed.returncode == 2 and "differs" in changed.stderr and "objective" in changed.stderr
    longer = _cli("train", str(DEMO), "--run-dir", str(run), "--resume", "--no-eval", "train.steps=3", *TINY,
                  "train.max_minutes=30", "train.max_cpu_minutes=30")  # the budgets may grow
    assert longer.returncode == 0, longer.stderr
    assert max(r["step"] for r in read_metrics(run) if "loss" in r) == 3


def test_sigkill_then_resume_reproduces_the_uninterrupted_losses(tmp_path: Path) -> None:
    steps = ["train.steps=12", "train.checkpoint_every=3", *TINY]
    reference = _cli("train", str(DEMO), "--run-dir", str(tmp_path / "ref"), "--no-eval", *steps)
    assert reference.returncode == 0, reference.stderr
    expected = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "ref") if "loss" in r}

    run = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "omnissl.cli.main", "train", str(DEMO), "--run-dir", str(run),
                                "--no-eval", *steps], cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (run / "checkpoints" / "step_00000006.pt").exists() and process.poll() is None:
        assert time.time() < deadline, "training never reached step 6"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # mid-run, between or during steps
    process.wait()
    resumed = _cli("train", str(DEMO), "--run-dir", str(run), "--resume", "--no-eval", *steps)
    assert resumed.returncode == 0, resumed.stderr
    got = {r["step"]: r["loss"] for r in read_metrics(run) if "loss" in r}
    assert sorted(got) == list(range(1, 13))
    for step, loss in expected.items():
        assert got[step] == pytest.approx(loss, rel=1e-6, abs=1e-7), f"step {step}"


def test_sigterm_finishes_the_step_and_checkpoints(tmp_path: Path) -> None:
    run = tmp_path / "term"
    process = subprocess.Popen([sys.executable, "-m", "omnissl.cli.main", "train", str(DEMO), "--run-dir", str(run),
                                "--no-eval", "train.steps=100000", *TINY], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 240
    while not (run / "metrics.jsonl").exists() or len(read_metrics(run)) < 3:
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0
    assert "resume with" in stderr
    checkpoints = list((run / "checkpoints").glob("step_*.pt"))
    assert len(checkpoints) == 1


def test_ddp_two_processes_with_gloo(tmp_path: Path) -> None:
    run = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "omnissl.cli.main", "train", str(DEMO), "--run-dir", str(run), "--no-eval",
               "train.steps=3", "train.checkpoint_every=3", *TINY]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    records = read_metrics(run)
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3]
    assert (run / "checkpoints" / "step_00000003.pt").is_file()


def test_resume_without_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "recipe.yaml").write_text(DEMO.read_text())
    done = _cli("train", str(DEMO), "--run-dir", str(tmp_path / "empty"), "--resume")
    assert done.returncode == 2 and "no checkpoint" in done.stderr


def test_resume_needs_run_dir() -> None:
    done = _cli("train", str(DEMO), "--resume")
    assert done.returncode == 2 and "--run-dir" in done.stderr
    with pytest.raises(ConfigError):
        raise ConfigError("x")
