"""The run lock after a SIGKILL: a trainer with 2 DataLoader workers is killed mid-run and the run directory can be
locked again at once (the workers neither keep the flock nor outlive the trainer; issue 19).

Before the fix the forked workers inherited the lock's descriptor and held the flock until torch's watchdog
noticed the dead parent, about 5 s later, so a scheduler's immediate restart was refused as "in use".
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from omnissl.core.errors import RunDirectoryError
from omnissl.train.rundir import RunLock

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "image" / "simclr_digits.yaml"
TINY = ["train.steps=100000", "train.log_every=1", "train.checkpoint_every=100000", "train.knn_every=0",
        "train.monitor_every=1000", "train.max_minutes=null", "train.batch_size=8", "train.device=cpu",
        "train.num_workers=2", "encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8"]


def _children(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (from /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # exited meanwhile
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                out.append(int(entry.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _lock_within(run: Path, seconds: float) -> float | None:
    """Seconds until :class:`RunLock` on ``run`` succeeded, or None when it was still refused after ``seconds``."""
    began = time.monotonic()
    while True:
        try:
            RunLock(run).release()
            return time.monotonic() - began
        except RunDirectoryError:
            if time.monotonic() - began > seconds:
                return None
            time.sleep(0.02)


def test_forked_child_does_not_hold_the_lock(tmp_path: Path) -> None:
    """The descriptor is closed in a forked child: once the parent releases, the lock is free though the child
    lives on (the child sleeps; without the fix it would hold the flock as long as it lives)."""
    lock = RunLock(tmp_path)
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the at-fork hooks have run once the child runs its own code: say so, then live on
        os.write(ready_w, b"1")
        time.sleep(3)
        os._exit(0)
    try:
        assert os.read(ready_r, 1) == b"1"
        lock.release()
        assert _lock_within(tmp_path, 0.0) is not None, "the forked child kept the run lock"
        assert _alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
        os.close(ready_w)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_lock_free_within_1s_after_sigkill(tmp_path: Path) -> None:
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = open(tmp_path / "train.log", "w")  # noqa: SIM115 - closed below
    trainer = subprocess.Popen([sys.executable, "-m", "omnissl.cli.main", "train", str(DEMO), "--run-dir", str(run),
                                "--no-eval", "--no-estimate", *TINY], stdout=log, stderr=subprocess.STDOUT,
                               env=env, cwd=ROOT)
    try:
        deadline = time.monotonic() + 25
        metrics = run / "metrics.jsonl"
        while not (metrics.exists() and metrics.read_text().count('"loss"') >= 2):
            assert trainer.poll() is None, (tmp_path / "train.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the trainer never stepped"
            time.sleep(0.05)
        workers = _children(trainer.pid)
        assert len(workers) >= 2, f"expected 2 DataLoader workers, found {workers}"
        with pytest.raises(RunDirectoryError, match="in use"):  # the lock is really held while it trains
            RunLock(run)
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait()
        log.close()
    waited = _lock_within(run, 1.0)
    assert waited is not None, f"run lock still held 1 s after SIGKILL; workers alive: " \
                               f"{[w for w in workers if _alive(w)]}"
    time.sleep(0.2)  # PR_SET_PDEATHSIG is delivered when the parent exits; give the kernel a moment
    assert not [w for w in workers if _alive(w)], "DataLoader workers outlived the killed trainer"
