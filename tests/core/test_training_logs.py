"""What training prints (issue 22, item 1): plain log lines when stdout is not a terminal (nohup, SLURM, CI,
``> log``), the tqdm bar's final line kept on a terminal with notes on their own lines, and a resume that says
where it resumed and counts only the steps it trained."""

from __future__ import annotations

import io
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from omnissl.train.assemble import assemble
from omnissl.core.config import recipe_from_dict
from omnissl.train import progress as progress_module
from omnissl.train.runner import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")

RAW = {"name": "logs", "data": {"name": "digits", "upscale": 8}, "encoder": {"name": "resnet10", "width": 4},
       "augment": {"global": {"ops": [{"name": "horizontal_flip"}]}},
       "objective": {"name": "simclr", "hidden_dim": 16, "projection_dim": 8},
       "train": {"steps": 4, "batch_size": 16, "log_every": 2, "checkpoint_every": 2}}

LINE = re.compile(r"^step (\d+)/(\d+) \| loss (\d+\.\d{4}) \| lr (\S+) \| (\d+) samples/s \| ETA (\d+:\d\d:\d\d)$")


def _assembled(**train: Any) -> Any:
    return assemble(recipe_from_dict({**RAW, "train": {**RAW["train"], **train}}))


def test_without_a_terminal_every_log_step_prints_a_plain_line(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    result = Trainer(_assembled(), tmp_path / "run").fit()
    lines = [m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    assert [(int(m[1]), int(m[2])) for m in lines] == [(2, 4), (4, 4)]
    assert float(lines[-1][3]) == pytest.approx(result.last_logs["loss"], abs=1e-4)
    assert float(lines[-1][4]) == pytest.approx(result.last_logs["lr"], rel=1e-2)
    assert lines[-1][6] == "0:00:00"  # nothing left to train at the last step


def test_the_line_format_and_eta() -> None:
    stream = io.StringIO()
    log = progress_module.Progress(total=100, initial=40, enabled=True, terminal=False, stream=stream)
    log.started -= 30.0  # 30 s for the first 10 steps of this invocation: 3 s a step, 50 steps left → 150 s
    log.update(step=50, logs={"loss": 1.23456, "lr": 0.001}, samples=640)
    log.close()
    match = LINE.match(stream.getvalue().strip())
    assert match is not None, stream.getvalue()
    assert match.groups()[:4] == ("50", "100", "1.2346", "1.00e-03")
    assert match[6] == "0:02:30"


def test_on_a_terminal_the_bar_stays_and_the_stop_note_has_its_own_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(progress_module, "is_terminal", lambda: True)
    trainer = Trainer(_assembled(steps=3), tmp_path / "run", recipe_source="recipes/x.yaml")
    trainer._on_signal(signal.SIGINT, None)
    assert trainer.fit().stopped_because == "SIGINT"
    captured = capsys.readouterr()
    assert not any(LINE.match(line) for line in captured.out.splitlines())  # the bar replaces the log lines
    err_lines = captured.err.replace("\r", "\n").split("\n")
    bar = [line for line in err_lines if line.startswith("train:")]
    assert bar and "1/3" in bar[-1]  # leave=True: the final state is kept in the scrollback
    note = [line for line in err_lines if "stopped by SIGINT" in line]
    assert note and note[0].startswith("omnissl: stopped by SIGINT at step 1; resume with: omnissl train "
                                       "recipes/x.yaml")


def test_a_resume_says_where_it_resumed_and_counts_only_its_own_steps(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    Trainer(_assembled(steps=2), run).fit()
    capsys.readouterr()
    result = Trainer(_assembled(steps=4), run, resume=True).fit()
    err = capsys.readouterr().err
    assert f"omnissl: resumed from step 2 (checkpoint {run / 'checkpoints' / 'step_00000002.pt'})" in err
    assert (result.start_step, result.steps_done, result.steps_trained) == (2, 4, 2)
    assert "resumed from step 2" in (run / "notes.log").read_text()
