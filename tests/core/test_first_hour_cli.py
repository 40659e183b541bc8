"""The first hour at the command line (issue 22, items 1, 3 and 4): the resume hint and summary after Ctrl-C, the
cost estimate of ``validate`` and ``train``, ``list --params``, and errors that say what to do next. In-process
``omnissl.cli.main.main`` calls on tiny digits runs (no plugin re-import per test)."""

from __future__ import annotations

import os
import re
import shlex
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import omnissl.report.auto
from omnissl.cli import main as cli
from omnissl.workflows import session
from omnissl.train.assemble import assemble
from omnissl.core.config import load_recipe
from omnissl.train.estimate import count_parameters
from omnissl.train.runner import Trainer, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "image" / "simclr_digits.yaml")
CIFAR = str(ROOT / "recipes" / "image" / "simclr.yaml")
TINY = ["encoder.width=4", "objective.hidden_dim=16", "objective.projection_dim=8", "train.batch_size=16",
        "train.log_every=1", "data.upscale=8"]
COST = re.compile(r"cost: ([\d,]+) trainable parameters \(tower 'main' (\S+), outside the towers (\S+)\); "
                  r"one step of batch 16 ≈ (\d+) ms on cpu \((\d+) samples/s\), so (\d+) steps ≈ \d+:\d\d:\d\d")


@pytest.fixture(autouse=True)
def _no_plots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(omnissl.report.auto, "auto_report", lambda *_a, **_k: None)  # plots are not under test


def _train(run: Path, *extra: str) -> int:
    return cli.main(["train", DEMO, "--run-dir", str(run), "--no-eval", *TINY, *extra])


# ----------------------------------------------------------------- item 1: Ctrl-C, the resume hint, the summary
def test_ctrl_c_names_the_recipe_skips_the_evaluation_and_the_resume_counts_its_own_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "b"
    real_step = Trainer.train_step

    def step_then_ctrl_c(self: Trainer, batches: Any) -> Any:
        done = real_step(self, batches)
        if self.step == 1:  # the step being finished is step 2
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends; the Trainer's handler catches it
        return done

    monkeypatch.setattr(Trainer, "train_step", step_then_ctrl_c)
    evaluated: list[object] = []
    monkeypatch.setattr(session, "evaluate_assembled", lambda *a, **k: evaluated.append(a) or {})
    assert cli.main(["train", DEMO, *TINY, "train.steps=5", "--run-dir", str(run)]) == 0
    out, err = capsys.readouterr()
    hint = f"omnissl train {DEMO} {' '.join(TINY)} train.steps=5 --run-dir {run} --resume"
    assert f"omnissl: stopped by SIGINT at step 2; resume with: {hint}" in err.splitlines()
    assert "trained 2 steps in" in out and "skipped the evaluation" in out and not evaluated

    monkeypatch.setattr(Trainer, "train_step", real_step)
    assert cli.main(shlex.split(hint)[1:]) == 0  # the printed command, as a user would paste it
    out, err = capsys.readouterr()
    assert f"omnissl: resumed from step 2 (checkpoint {run / 'checkpoints' / 'step_00000002.pt'})" in err
    assert "trained 3 steps (2 → 5) in" in out and len(evaluated) == 1


def test_a_refused_resume_names_the_key_that_differs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert _train(run, "train.steps=1", "--no-estimate") == 0
    capsys.readouterr()
    assert _train(run, "train.steps=2", "train.batch_size=8", "--resume") == 2
    assert "differs" in (err := capsys.readouterr().err) and "train.batch_size" in err


# ----------------------------------------------------------------- item 3: cost before committing
def test_validate_prints_the_parameters_and_a_timed_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["validate", DEMO, *TINY, "train.steps=30"]) == 0
    match = COST.search(capsys.readouterr().out)
    assert match is not None
    objective = assemble(load_recipe(DEMO, [*TINY, "train.steps=30"]), synthetic=16).objective
    trainable = sum(p.numel() for p in objective.parameters() if p.requires_grad)
    assert int(match[1].replace(",", "")) == trainable
    assert int(match[4]) > 0 and int(match[6]) == 30


def test_train_prints_the_estimate_first_and_it_does_not_change_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _train(tmp_path / "with", "train.steps=3") == 0
    out = capsys.readouterr().out
    assert COST.search(out) and out.index("cost:") < out.index("trained 3 steps")
    assert _train(tmp_path / "without", "train.steps=3", "--no-estimate") == 0
    assert "cost:" not in capsys.readouterr().out
    losses = [[r["loss"] for r in read_metrics(tmp_path / name) if "loss" in r] for name in ("with", "without")]
    assert len(losses[0]) == 3 and losses[0] == losses[1]  # the timed step ran on a copy, under a forked RNG


def test_parameters_are_counted_per_tower_outside_and_frozen_apart() -> None:
    class Fake(nn.Module):  # a student/teacher pair where the tower evaluation reads is the frozen teacher
        def __init__(self) -> None:
            super().__init__()
            self.student, self.head = nn.Linear(4, 3), nn.Linear(3, 2)
            self.teacher, self.teacher_head = nn.Linear(4, 3), nn.Linear(3, 2)
            self.teacher.requires_grad_(False)
            self.teacher_head.requires_grad_(False)

        @property
        def towers(self) -> dict[str, nn.Module]:
            return {"main": self.teacher, "online": self.student}

    assert count_parameters(Fake()) == (15 + 8, 8, {"main": (15, True), "online": (15, False)}, 8)


def test_list_params_shows_types_defaults_and_the_context(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--params", "vicreg"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert re.search(r"expander_dim\s+int\s+default 8192", "\n".join(lines))
    assert re.search(r"encoder\s+Encoder\s+from the context", "\n".join(lines))
    assert cli.main(["list", "--params", "vicrg"]) == 2
    assert "did you mean 'vicreg'" in capsys.readouterr().err.lower()


# ----------------------------------------------------------------- item 4: errors that guide
def test_an_unknown_modality_suggests_the_close_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["list", "--modality", "imge"]) == 2
    assert "unknown modality 'imge' (did you mean 'image'?)" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["flag", "env", "default"])
def test_a_missing_dataset_file_names_the_data_root_setting_and_the_card(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OMNISSL_DATA_DIR", raising=False)
    flag = ["--data-root", str(empty)] if how == "flag" else []
    if how == "env":
        monkeypatch.setenv("OMNISSL_DATA_DIR", str(empty))
    assert cli.main(["train", CIFAR, "--run-dir", str(tmp_path / "run"), "--no-estimate", *flag]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not found" in err
    shown = {"flag": f"--data-root {empty}", "env": f"$OMNISSL_DATA_DIR={empty}", "default": "the default ./data"}
    assert f"data root: {shown[how]}" in err and "--data-root DIR" in err and "$OMNISSL_DATA_DIR" in err
    assert str(ROOT / "datasets" / "cifar10" / "CARD.md") in err


def test_ctrl_c_during_the_evaluation_is_one_line_and_code_130(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_args: Any, **_kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(session, "evaluate_assembled", interrupted)
    run = tmp_path / "run"
    assert cli.main(["train", DEMO, "--run-dir", str(run), *TINY, "train.steps=1", "--no-estimate"]) == 130
    err = capsys.readouterr().err.strip()
    assert err == f"omnissl: interrupted; the trained run is saved in {run}; evaluate it with: omnissl eval {run}"
    assert torch.load(run / "checkpoints" / "step_00000001.pt", weights_only=False)["step"] == 1
