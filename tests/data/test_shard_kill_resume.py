"""SIGKILL a training run that streams from shards (2 DataLoader workers), resume it, and its per-step records of
``metrics.jsonl`` equal an uninterrupted run's bit for bit: the resumed stream sees the same sample sequence.
Runs are ``omnissl.cli.main.main`` in forked children, as in ``tests/core/test_kill_anywhere.py``."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import pytest
from shardkit import mnist_shards

import omnissl.report.auto
from omnissl.cli.main import main as cli_main
from omnissl.train import checkpoint as ckpt

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 12
RECIPE = {
    "name": "shards-simclr", "plugins": ["image"], "seed": 0,
    "data": {"name": "webdataset", "shards": "digits/train", "test_shards": "digits/test", "fields": {"image": "png"},
             "decode": {"image": {"image_size": 16}}, "shuffle_buffer": 16},
    "encoder": {"name": "resnet10", "width": 4, "cifar_stem": True},
    "augment": {"global": {"count": 2, "ops": [{"name": "random_resized_crop", "size": 16, "scale": [0.5, 1.0]}]}},
    "objective": {"name": "simclr", "temperature": 0.2, "projection_dim": 8, "hidden_dim": 16},
    "train": {"steps": STEPS, "batch_size": 8, "lr": 0.003, "warmup_steps": 2, "log_every": 1, "checkpoint_every": 2,
              "keep_last": 2, "knn_every": 0, "max_minutes": None, "device": "cpu", "num_workers": 2,
              "monitor_every": 5},
}


@pytest.fixture(scope="module")
def setup(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("kill_shards")
    mnist_shards(data_root, root / "digits", train=160, test=20, shard_size=20, captions=False)
    recipe = root / "recipe.yaml"
    recipe.write_text(json.dumps(RECIPE), encoding="utf-8")  # JSON is YAML
    return root, recipe


def _run(root: Path, recipe: Path, run: Path, *, resume: bool = False, kill_after: int | None = None) -> int:
    argv = ["train", str(recipe), "--run-dir", str(run), "--no-eval", "--data-root", str(root),
            *(["--resume"] if resume else [])]
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sys.stdout = sys.stderr = open(run.parent / f"{run.name}.log", "a", buffering=1)  # noqa: SIM115
            omnissl.report.auto.auto_report = lambda *_args, **_kwargs: None
            code = cli_main(argv)
        except BaseException:  # noqa: BLE001 - the child must report, then leave without returning into pytest
            traceback.print_exc()
        finally:
            os._exit(code)
    if kill_after is not None:
        deadline = time.time() + 120
        while _losses(run) < kill_after and os.waitpid(pid, os.WNOHANG) == (0, 0):
            assert time.time() < deadline, "the run never got that far"
            time.sleep(0.002)
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        status = 0
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _log(run: Path) -> str:
    path = run.parent / f"{run.name}.log"
    return path.read_text() if path.exists() else ""


def _losses(run: Path) -> int:
    path = run / "metrics.jsonl"
    return path.read_text().count('"loss"') if path.exists() else 0


def _records(run: Path) -> list[dict[str, Any]]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in ("time", "samples_per_s")} for line in lines]


@pytest.mark.parametrize("kill_after", [3, 8])
def test_a_killed_shard_run_resumes_to_the_same_records(setup: tuple[Path, Path], tmp_path: Path,
                                                        kill_after: int) -> None:
    root, recipe = setup
    reference = tmp_path / "reference"
    assert _run(root, recipe, reference) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    killed = tmp_path / "killed"
    code = _run(root, recipe, killed, kill_after=kill_after)
    assert code == -signal.SIGKILL, (tmp_path / "killed.log").read_text()[-3000:]
    assert ckpt.list_checkpoints(killed / "checkpoints"), "killed before its first checkpoint"
    # The killed run's DataLoader workers notice their parent is gone within torch's 5 s status interval; until
    # then they hold the run-directory lock they inherited, and a resume is (rightly) refused as "in use".
    deadline = time.time() + 60
    while (code := _run(root, recipe, killed, resume=True)) == 2 and "is in use" in _log(killed) \
            and time.time() < deadline:
        (tmp_path / "killed.log").write_text("")
        time.sleep(1)
    assert code == 0, _log(killed)[-3000:]
    steps = [r for r in _records(reference) if "loss" in r]
    assert len(steps) == STEPS
    assert [r for r in _records(killed) if "loss" in r] == steps
