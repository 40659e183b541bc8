"""Kill anywhere: SIGKILL a tiny run at random moments, inside a checkpoint write, at the rename, before its first
checkpoint and during a resume's metrics rewrite; resume (or restart, when there is nothing to resume) and the
per-step records of ``metrics.jsonl`` must equal an uninterrupted run's, bit for bit (only ``time`` and
``samples_per_s`` differ between runs).

Each run is ``omnissl.cli.main.main`` in a forked child of this process (imports done once, so a run takes about a
second); the child installs its kill hook before training, so the kill lands exactly where asked.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

import omnissl.cli.main
import omnissl.report.auto
from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.train import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "image" / "simclr_digits.yaml")
STEPS = 20
TINY = [f"train.steps={STEPS}", "train.checkpoint_every=2", "train.keep_last=2", "train.log_every=1",
        "train.monitor_every=5", "train.warmup_steps=2", "train.knn_every=0", "train.max_minutes=null",
        "train.batch_size=16", "train.device=cpu", "encoder.width=4", "objective.hidden_dim=16",
        "objective.projection_dim=8"]
Hook = Callable[[], None]


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _in_checkpoint_write(step: int, at_byte: int) -> Hook:
    """Die after ``at_byte`` bytes of the step checkpoint's temp file reached the disk."""
    def install() -> None:
        real, written = ckpt._write_all, {"n": 0}

        def write_all(fd: int, data: Any) -> None:
            if f".step_{step:08d}.pt." in os.readlink(f"/proc/self/fd/{fd}"):
                view = memoryview(data).cast("B")
                if written["n"] + len(view) >= at_byte:
                    real(fd, view[:at_byte - written["n"]])
                    _kill_self()
                written["n"] += len(view)
            real(fd, data)

        ckpt._write_all = write_all  # type: ignore[assignment]
    return install


def _at_rename(name: str) -> Hook:
    """Die when the complete temp file is about to be renamed to ``name``."""
    def install() -> None:
        real = os.replace

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            if Path(dst).name == name:
                _kill_self()
            real(src, dst, *args, **kwargs)

        os.replace = replace  # type: ignore[assignment]
    return install


def _run(run: Path, *, resume: bool = False, hook: Hook | None = None, kill_after_records: int | None = None,
         seed: int = 0) -> tuple[int, str]:
    """``omnissl train`` in a forked child; returns (exit code or -signal, its stderr). ``kill_after_records``:
    SIGKILL it from here once metrics.jsonl holds that many loss records, after a random pause of up to 30 ms."""
    log = run.parent / f"{run.name}-{time.monotonic_ns()}.log"
    argv = ["train", DEMO, "--run-dir", str(run), "--no-eval", *TINY, *(["--resume"] if resume else [])]
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 1
        try:
            sys.stdout = sys.stderr = open(log, "w", buffering=1, encoding="utf-8")  # noqa: SIM115
            os.dup2(sys.stderr.fileno(), 1)
            os.dup2(sys.stderr.fileno(), 2)
            omnissl.report.auto.auto_report = lambda *_args, **_kwargs: None  # plots are not under test
            if hook is not None:
                hook()
            code = omnissl.cli.main.main(argv)
        finally:
            os._exit(code)
    if kill_after_records is not None:
        deadline = time.time() + 120
        while _loss_records(run) < kill_after_records and os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.time() < deadline, "the run never got that far"
            time.sleep(0.002)
        time.sleep(random.Random(seed).uniform(0, 0.03))
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:  # reaped by the WNOHANG poll above
        status = 0
    code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    return code, log.read_text() if log.exists() else ""


def _loss_records(run: Path) -> int:
    path = run / "metrics.jsonl"
    return path.read_text().count('"loss"') if path.exists() else 0


def _records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "samples_per_s")} for line in lines]


def _recover(run: Path) -> None:
    """What a user does after a crash: resume; when the run died before its first checkpoint, start it again."""
    if ckpt.list_checkpoints(run / "checkpoints"):
        code, log = _run(run, resume=True)
    else:
        code, log = _run(run)
    assert code == 0, log[-3000:]
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith((".tmp", ".corrupt"))]
    assert not leftovers, leftovers


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    torch.set_num_threads(1)
    # Import once here what every run needs (plugins, the dataset, TensorBoard): each forked run inherits it.
    from torch.utils.tensorboard import SummaryWriter  # noqa: F401

    import omnissl.workflows.session
    import omnissl.train.runner  # noqa: F401

    assemble(load_recipe(DEMO, TINY))
    run = tmp_path_factory.mktemp("reference") / "run"
    code, log = _run(run)
    assert code == 0, log[-3000:]
    records = _records(run)
    assert [r["step"] for r in records if "loss" in r] == list(range(1, STEPS + 1))
    assert any("collapse/effective_rank" in r for r in records)
    return records


def test_killed_before_the_first_checkpoint_restarts(tmp_path: Path, reference: list[dict[str, Any]]) -> None:
    run = tmp_path / "run"
    # Dying as the first checkpoint is renamed into place leaves a run with records but no checkpoint, whatever
    # the machine's speed (a kill timed from outside could land after the rename on a fast machine).
    assert _run(run, hook=_at_rename("step_00000002.pt"))[0] == -signal.SIGKILL
    assert _loss_records(run) >= 1
    assert not ckpt.list_checkpoints(run / "checkpoints")
    code, log = _run(run, resume=True)
    assert code == 2 and "without --resume" in log, log[-2000:]
    _recover(run)
    assert _records(run) == reference


@pytest.mark.parametrize("seed", [1, 2])
def test_killed_at_a_random_moment(tmp_path: Path, reference: list[dict[str, Any]], seed: int) -> None:
    run = tmp_path / "run"
    at = random.Random(seed).randint(3, STEPS - 2)
    assert _run(run, kill_after_records=at, seed=seed)[0] == -signal.SIGKILL, f"kill after {at} records"
    _recover(run)
    assert _records(run) == reference, f"kill after {at} records"


@pytest.mark.parametrize("hook", [_in_checkpoint_write(6, at_byte=3000), _at_rename("step_00000010.pt")],
                         ids=["mid-write of step 6", "rename of step 10"])
def test_killed_inside_a_checkpoint_write(tmp_path: Path, reference: list[dict[str, Any]], hook: Hook) -> None:
    run = tmp_path / "run"
    assert _run(run, hook=hook)[0] == -signal.SIGKILL
    _recover(run)
    assert _records(run) == reference


def test_killed_again_while_the_resume_rewrites_the_metrics(tmp_path: Path,
                                                             reference: list[dict[str, Any]]) -> None:
    run = tmp_path / "run"
    assert _run(run, kill_after_records=9, seed=3)[0] == -signal.SIGKILL
    history = _records(run)
    assert _run(run, resume=True, hook=_at_rename("metrics.jsonl"))[0] == -signal.SIGKILL
    assert _records(run) == history  # the rewrite is atomic: nothing before the checkpoint was lost
    _recover(run)
    assert _records(run) == reference
