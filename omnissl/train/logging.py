"""Metrics to ``metrics.jsonl`` and TensorBoard, notes to ``notes.log`` (the bar and log lines: ``progress``)."""

from __future__ import annotations

import errno
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from omnissl.core.errors import CheckpointError, RunDirectoryError
from omnissl.train.checkpoint import atomic_write

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_note(run_dir: Path, message: str) -> None:
    """Say ``message`` on stderr and keep it in ``RUN_DIR/notes.log`` (the report shows that file)."""
    _say(message)
    with (run_dir / "notes.log").open("a", encoding="utf-8") as handle:
        handle.write(message + "\n")


def _say(message: str) -> None:
    # tqdm.write clears a live progress bar first and redraws it after, so a note never lands inside the bar.
    tqdm.write(f"omnissl: {message}", file=sys.stderr)


def read_records(path: Path) -> tuple[list[tuple[str, dict[str, Any]]], str | None]:
    """The records of a ``metrics.jsonl`` as ``(line, parsed)`` pairs, and its unterminated last line if it is not
    a whole record (a kill or a full disk mid-write leaves one). Any other unreadable line is an error naming it."""
    text = path.read_text(encoding="utf-8", errors="replace")
    lines = text.split("\n")
    records, partial = [], None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            parsed = json.loads(line)
            problem = None if isinstance(parsed, dict) else "not a JSON object"
        except ValueError as error:
            problem = str(error)
        if problem is not None:
            if number == len(lines):  # no newline after it: the write was cut short
                partial = line
                continue
            raise RunDirectoryError(f"{path} line {number} is not a metrics record ({problem}); remove or repair "
                                    f"that line, then resume")
        records.append((line, parsed))
    return records, partial


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` so a crash leaves the old file or the new one, never a truncated one."""
    def write(fd: int) -> None:
        with os.fdopen(fd, "w", encoding="utf-8", closefd=False) as handle:
            handle.write(text)

    atomic_write(path, write)


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The records of ``RUN_DIR/metrics.jsonl`` (an incomplete last line, left by a kill, is not a record)."""
    path = Path(run_dir) / "metrics.jsonl"
    return [record for _, record in read_records(path)[0]] if path.exists() else []


class MetricsWriter:
    """Appends one JSON object per record. On resume, records from steps after the resumed step (written after the
    last checkpoint by the interrupted run) are removed so the curve is not duplicated; the file is rewritten
    atomically so a second crash cannot lose the history before the checkpoint."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, truncate_from_step: int = 0) -> None:
        self.enabled = enabled
        self.run_dir = run_dir
        self.path = run_dir / "metrics.jsonl"
        self.notes_path = run_dir / "notes.log"
        self._tensorboard: Any = None
        if not enabled:
            return
        if truncate_from_step and self.path.exists():
            self._truncate(truncate_from_step)
        self._file = self.path.open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        except ImportError:  # TensorBoard is optional at run time; JSONL is the record
            self._tensorboard = None

    def _truncate(self, step: int) -> None:
        records, partial = read_records(self.path)
        kept = [line for line, record in records if record.get("step", 0) <= step]
        if partial is not None:
            self.note(f"{self.path}: dropped an incomplete last line ({len(partial)} characters, cut short by the "
                      f"interrupted run)")
        try:
            atomic_write_text(self.path, "".join(line + "\n" for line in kept))
        except OSError as error:
            if error.errno not in _DISK_FULL:
                raise
            raise CheckpointError(f"no space left while rewriting {self.path} for the resume at step {step}; "
                                  f"nothing was lost; free space and resume") from None

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(key, value, step)

    def note(self, message: str) -> None:
        if self.enabled:
            write_note(self.run_dir, message)
        else:
            _say(message)

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tensorboard is not None:
                self._tensorboard.close()

