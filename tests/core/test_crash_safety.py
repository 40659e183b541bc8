"""Crash safety of a run directory: verified checkpoints with automatic fallback (F1, F20), one process per run
directory (F6), crash-safe metrics on resume (F7), restarting a run killed before its first checkpoint (F14),
disk full (F21), stale temp files (F22) and the resume hint after SIGTERM."""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest
import torch

from omnissl.train.assemble import assemble
from omnissl.core.config import recipe_from_dict
from omnissl.core.errors import CheckpointError, OmnisslError, RunDirectoryError
from omnissl.train import checkpoint as ckpt
from omnissl.train.logging import MetricsWriter
from omnissl.train.runner import Trainer, read_metrics

pytestmark = pytest.mark.usefixtures("one_thread")

RAW = {"name": "crash", "data": {"name": "digits", "upscale": 8}, "encoder": {"name": "resnet10", "width": 4},
       "augment": {"global": {"ops": [{"name": "horizontal_flip"}]}},
       "objective": {"name": "simclr", "hidden_dim": 16, "projection_dim": 8},
       "train": {"steps": 4, "batch_size": 16, "log_every": 1, "checkpoint_every": 1, "keep_last": 3}}


def _assembled(**train: Any) -> Any:
    return assemble(recipe_from_dict({**RAW, "train": {**RAW["train"], **train}}))


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run) if "loss" in r}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 4-step run, checkpoints at steps 2, 3, 4; each test works on its own copy."""
    run = tmp_path_factory.mktemp("finished") / "run"
    torch.set_num_threads(1)
    Trainer(_assembled(), run).fit()
    return run


@pytest.fixture()
def run(finished: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    (copy / ".lock").unlink(missing_ok=True)
    return copy


def _corrupt_largest_tensor(path: Path) -> None:
    """Flip 64 bytes in the middle of the largest tensor record: the zip stays well formed, the CRC does not match."""
    data = bytearray(path.read_bytes())
    info = max((i for i in zipfile.ZipFile(path).infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    middle = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    path.write_bytes(data)


# ----------------------------------------------------------------- F1, F20: verified checkpoints, fallback
def test_a_corrupted_tensor_record_is_detected_on_load(run: Path) -> None:
    latest = run / "checkpoints" / "step_00000004.pt"
    _corrupt_largest_tensor(latest)
    with pytest.raises(CheckpointError, match=r"step_00000004\.pt.*CRC-32 mismatch.*step_00000003\.pt") as caught:
        ckpt.load_checkpoint(latest)
    assert "--checkpoint" not in str(caught.value) and "\n" not in str(caught.value)


def test_resume_falls_back_to_the_previous_good_checkpoint_and_says_so(run: Path) -> None:
    expected = _losses(run)
    bad = run / "checkpoints" / "step_00000004.pt"
    _corrupt_largest_tensor(bad)
    trainer = Trainer(_assembled(), run, resume=True)
    assert trainer.step == 3
    notes = (run / "notes.log").read_text()
    assert "step_00000004.pt" in notes and "step_00000003.pt" in notes
    trainer.fit()
    assert _losses(run) == expected  # step 4 recomputed from step 3: the same loss, bit for bit
    assert ckpt.load_checkpoint(bad)["step"] == 4  # rewritten by the resumed run


def test_resume_with_no_usable_checkpoint_names_every_file(run: Path) -> None:
    for path in ckpt.list_checkpoints(run / "checkpoints"):
        path.write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"step_00000002\.pt.*step_00000003\.pt.*step_00000004\.pt"):
        Trainer(_assembled(), run, resume=True)


@pytest.mark.parametrize("content, detail", [(b"", r"empty \(0 bytes\)"), (b"PK\x03\x04" + bytes(300), "truncated")])
def test_an_empty_or_truncated_checkpoint_has_a_detail(tmp_path: Path, content: bytes, detail: str) -> None:
    path = tmp_path / "step_00000001.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=detail) as caught:
        ckpt.load_checkpoint(path)
    assert "--checkpoint" not in str(caught.value)


def test_a_pickle_payload_is_refused_without_quoting_the_unsafe_advice(tmp_path: Path) -> None:
    path = tmp_path / "step_00000001.pt"
    torch.save({"step": 1, "model": {}, "evil": Path("/")}, path)
    with pytest.raises(CheckpointError, match="refused: contains Python objects") as caught:
        ckpt.load_checkpoint(path)
    assert "weights_only" not in str(caught.value) and "\n" not in str(caught.value)


# ----------------------------------------------------------------- F6: one process per run directory
def test_a_second_trainer_on_a_busy_run_dir_is_refused_naming_the_holder(tmp_path: Path) -> None:
    first = Trainer(_assembled(steps=1), tmp_path / "busy")
    holder = rf"pid {os.getpid()} on {socket.gethostname()}"
    with pytest.raises(RunDirectoryError, match=holder):
        Trainer(_assembled(steps=1), tmp_path / "busy")
    first.fit()
    with pytest.raises(RunDirectoryError, match="already exists"):  # the lock is gone; the usual refusal
        Trainer(_assembled(steps=1), tmp_path / "busy")
    resumed = Trainer(_assembled(steps=2), tmp_path / "busy", resume=True)
    with pytest.raises(RunDirectoryError, match=holder):
        Trainer(_assembled(steps=2), tmp_path / "busy", resume=True)
    resumed.fit()


def test_a_lock_file_left_by_a_dead_process_does_not_block(run: Path) -> None:
    (run / ".lock").write_text("pid 999999 on elsewhere since 2020-01-01T00:00:00\n")
    Trainer(_assembled(steps=5), run, resume=True).fit()
    assert sorted(_losses(run)) == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------- F7: metrics.jsonl on resume
def test_resume_drops_a_partial_last_metrics_line_and_names_the_file(run: Path) -> None:
    expected = _losses(run)
    with (run / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 5, "ti')
    Trainer(_assembled(steps=5), run, resume=True).fit()
    got = _losses(run)
    assert sorted(got) == [1, 2, 3, 4, 5] and all(got[s] == expected[s] for s in expected)
    assert "metrics.jsonl" in (run / "notes.log").read_text()


def test_a_failed_metrics_rewrite_leaves_the_history_intact(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (run / "metrics.jsonl").read_bytes()

    def no_space(_fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OmnisslError, match="no space left"):
        MetricsWriter(run, truncate_from_step=2)
    assert (run / "metrics.jsonl").read_bytes() == before
    assert not [p for p in run.iterdir() if p.name.endswith(".tmp")]


def test_a_garbled_metrics_line_in_the_middle_is_an_error_naming_file_and_line(run: Path) -> None:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    lines[1] = lines[1][:7]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(OmnisslError, match=r"metrics\.jsonl line 2"):
        MetricsWriter(run, truncate_from_step=3)


# ----------------------------------------------------------------- F14: killed before the first checkpoint
def _killed_before_first_checkpoint(run: Path) -> None:
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / ".step_00000001.pt.k3j2.tmp").write_bytes(b"PK partial")
    (run / "recipe.yaml").write_text("name: crash\n")
    (run / "metrics.jsonl").write_text('{"step": 1, "time": 0, "loss": 9.0}\n{"st')
    (run / "notes.log").write_text("")


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again(tmp_path: Path) -> None:
    run = tmp_path / "early"
    _killed_before_first_checkpoint(run)
    with pytest.raises(RunDirectoryError, match="no checkpoint.*without --resume"):
        Trainer(_assembled(steps=2), run, resume=True)
    Trainer(_assembled(steps=2), run).fit()
    assert [r["step"] for r in read_metrics(run) if "loss" in r] == [1, 2]
    assert 9.0 not in _losses(run).values()
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001.pt", "step_00000002.pt"]


def test_a_long_run_without_checkpoint_every_still_checkpoints_on_a_timer(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # F14: recipes with checkpoint_every: 0 used to save only at the end, so a kill late in a long run lost it all.
    clock = iter(float(t) for t in range(0, 10_000, 40))  # each perf_counter() call: 40 s later
    monkeypatch.setattr("omnissl.train.runner.time.perf_counter", lambda: next(clock))
    run = tmp_path / "timed"
    saved: list[int] = []
    trainer = Trainer(_assembled(steps=4, checkpoint_every=0, checkpoint_minutes=1.0, keep_last=5), run)
    real_save = trainer.save_checkpoint
    monkeypatch.setattr(trainer, "save_checkpoint", lambda: (saved.append(trainer.step), real_save())[1])
    trainer.fit()
    assert saved[:-1] and all(step < 4 for step in saved[:-1]), saved  # timed saves before the final one
    assert saved[-1] == 4


def test_a_directory_with_foreign_files_is_still_never_reused(tmp_path: Path) -> None:
    run = tmp_path / "mine"
    _killed_before_first_checkpoint(run)
    (run / "thesis.tex").write_text("precious")
    with pytest.raises(RunDirectoryError, match="already exists"):
        Trainer(_assembled(steps=2), run)
    assert (run / "thesis.tex").read_text() == "precious"


# ----------------------------------------------------------------- F21: disk full
def _disk_fills_up(monkeypatch: pytest.MonkeyPatch, *, from_step: int) -> None:
    """Every checkpoint write from step ``from_step`` on fails with ENOSPC, as on a full disk."""
    real = ckpt._write_all

    def write_all(fd: int, data: Any) -> None:
        name = os.readlink(f"/proc/self/fd/{fd}")
        if int(name.split(".step_")[1][:8]) >= from_step:
            raise OSError(errno.ENOSPC, "No space left on device")
        real(fd, data)

    monkeypatch.setattr(ckpt, "_write_all", write_all)


def test_disk_full_during_a_checkpoint_is_one_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = tmp_path / "full"
    _disk_fills_up(monkeypatch, from_step=3)
    with pytest.raises(CheckpointError) as caught:
        Trainer(_assembled(), run).fit()
    message = str(caught.value)
    assert "\n" not in message
    assert "no space left while writing step 3 checkpoint" in message
    assert f"last good checkpoint: {run / 'checkpoints' / 'step_00000002.pt'}" in message
    assert "nothing was lost" in message and "free space and resume" in message
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_00000001.pt", "step_00000002.pt"]


def test_resume_on_a_full_disk_is_the_same_clear_error(run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = (run / "metrics.jsonl").read_bytes()
    _disk_fills_up(monkeypatch, from_step=5)
    with pytest.raises(CheckpointError, match="no space left while writing step 5 checkpoint.*step_00000004.pt"):
        Trainer(_assembled(steps=6), run, resume=True).fit()
    assert ckpt.load_checkpoint(run / "checkpoints" / "step_00000004.pt")["step"] == 4
    assert (run / "metrics.jsonl").read_bytes().startswith(before)


# ----------------------------------------------------------------- F22: stale temp files
def test_stale_checkpoint_temp_files_are_removed_on_resume(run: Path) -> None:
    directory = run / "checkpoints"
    stale = [directory / ".step_00000005.pt.a1b2c3.tmp", directory / ".best.pt.zz9.tmp"]
    kept = [directory / ".keep", directory / "notes.tmp", directory / "step_00000009.pt.bak"]
    for path in stale + kept:
        path.write_bytes(b"x" * 10)
    Trainer(_assembled(), run, resume=True)
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert "2 stale" in (run / "notes.log").read_text()


# ----------------------------------------------------------------- the resume hint after SIGTERM
@pytest.mark.parametrize("source, shown", [("recipes/x.yaml", "recipes/x.yaml"), (None, "<recipe>")])
def test_the_resume_hint_names_the_recipe(tmp_path: Path, source: str | None, shown: str) -> None:
    run = tmp_path / "term"
    trainer = Trainer(_assembled(steps=3), run, recipe_source=source)
    trainer._on_signal(signal.SIGTERM, None)
    assert trainer.fit().stopped_because == "SIGTERM"
    assert f"omnissl train {shown} --run-dir {run} --resume" in (run / "notes.log").read_text()


def test_the_finiteness_check_accepts_empty_tensors() -> None:
    # SwAV's queue starts as a (2, 0, D) buffer: an empty tensor holds no NaN and must not crash the check.
    from omnissl.train.guard import all_finite, nonfinite_entries

    assert all_finite([torch.empty(2, 0, 4), torch.ones(3)])
    assert not all_finite([torch.empty(0), torch.tensor([1.0, float("nan")])])
    assert nonfinite_entries({"queue": torch.empty(2, 0, 4), "w": torch.tensor([float("inf")])}) == {"w": 1}


def test_the_finiteness_check_is_exact_where_the_fast_norm_overflows() -> None:
    # The L2 norm goes first; its sum of squares overflows for huge finite values (fp32: 1e30² = inf; an fp16 norm above 65504),
    # which must not read as NaN/Inf weights. A real Inf or NaN is still found in any dtype.
    from omnissl.train.guard import all_finite

    assert all_finite([torch.full((4,), 1e30), torch.ones(2)])
    assert all_finite([torch.full((8,), 60000.0, dtype=torch.float16)])  # its norm, 1.7e5, is inf in fp16
    assert all_finite([torch.full((8,), 1e30, dtype=torch.bfloat16)])
    for dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        for bad in (float("inf"), float("-inf"), float("nan")):
            values = torch.ones(5, dtype=dtype)
            values[3] = bad
            assert not all_finite([torch.ones(3), values]), (dtype, bad)
