"""Atomic, verified checkpoints: temp file + fsync + rename; CRC-checked and loaded with ``weights_only=True``.

A checkpoint holds only tensors and plain containers (no pickled objects), so ``torch.load(weights_only=True)``
reads it. ``torch.load`` itself does not check the zip's CRC-32 of each record, so a file damaged in place (bad disk,
bad copy) would load with wrong weights: every load first checks each record's CRC-32. Resume then falls back to the
newest checkpoint that passes (:func:`load_resumable`) and says which files it passed over.
"""

from __future__ import annotations

import errno
import os
import pickle
import re
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from omnissl.core.errors import CheckpointError

_PATTERN = re.compile(r"^step_(\d+)\.pt$")
# What atomic_save names its temp files (tempfile.mkstemp(prefix=".NAME.", suffix=".tmp")); a kill leaves them.
TEMP_PATTERN = re.compile(r"^\.(step_\d+|best)\.pt\.[A-Za-z0-9_]+\.tmp$")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def _write_all(fd: int, data: Any) -> None:
    """The one place checkpoint bytes reach the disk (tests put a full disk or a kill here)."""
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


class _Sink:
    """A write-only file for ``torch.save`` that keeps the ``OSError`` of a failed write: torch turns it into a
    ``RuntimeError('unexpected pos …')`` that no longer says the disk is full."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            _write_all(self.fd, data)
        except OSError as error:
            self.error = error
            raise
        return memoryview(data).nbytes

    def flush(self) -> None:
        """Writes go straight to the descriptor: nothing is buffered here."""


def atomic_write(path: Path, write: Callable[[int], None]) -> None:
    """Replace ``path`` by what ``write(fd)`` writes, so a crash leaves either the old file or the complete new one:
    a temp file beside it, fsync, rename, fsync of the folder. A failure removes the temp file and re-raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        try:
            write(fd)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_name, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_save(payload: dict[str, Any], path: Path) -> None:
    """Write ``payload`` to ``path`` atomically (:func:`atomic_write`).

    A failed write removes the temp file and raises the ``OSError`` (``errno.ENOSPC`` on a full disk)."""
    def write(fd: int) -> None:
        sink = _Sink(fd)
        try:
            torch.save(payload, sink)
        except RuntimeError:
            if sink.error is not None:
                raise sink.error from None
            raise

    atomic_write(path, write)


def list_checkpoints(directory: Path) -> list[Path]:
    """Step checkpoints in ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _PATTERN.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(directory: Path) -> Path | None:
    found = list_checkpoints(directory)
    return found[-1] if found else None


def raise_if_disk_full(error: OSError, *, what: str, directory: Path, resume_command: str) -> None:
    """For a full disk (ENOSPC / EDQUOT), raise one line: what failed, which checkpoint is intact, and that
    resuming loses nothing (instead of a traceback, or torch's 'unexpected pos'); otherwise return."""
    if error.errno in DISK_FULL:
        latest = latest_checkpoint(directory)
        raise CheckpointError(f"no space left while writing {what}; last good checkpoint: {latest or 'none yet'}; "
                              f"nothing was lost; free space and resume: {resume_command}") from None


def save_step_checkpoint(payload: dict[str, Any], directory: Path, *, step: int, keep_last: int,
                         resume_command: str = "omnissl train <recipe> --run-dir RUN_DIR --resume") -> Path:
    """Save ``step_NNNNNNNN.pt`` atomically and keep the newest ``keep_last``; a full disk is one clear
    ``CheckpointError`` (the temp file is gone, the older checkpoints are untouched)."""
    path = directory / f"step_{step:08d}.pt"
    try:
        atomic_save(payload, path)
    except OSError as error:
        raise_if_disk_full(error, what=f"step {step} checkpoint", directory=directory, resume_command=resume_command)
        raise
    for old in list_checkpoints(directory)[:-keep_last]:
        old.unlink(missing_ok=True)
    return path


def remove_stale_temps(directory: Path) -> int:
    """Delete the temp files of checkpoint writes that a kill interrupted; return how many. Only names that
    :func:`atomic_save` makes are touched. Call it while holding the run lock (no writer can be mid-save)."""
    if not directory.is_dir():
        return 0
    stale = [p for p in directory.iterdir() if TEMP_PATTERN.match(p.name) and p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def _damage(path: Path) -> str | None:
    """Why ``path`` is not an intact checkpoint archive, or ``None`` when every record's CRC-32 matches."""
    size = path.stat().st_size
    if size == 0:
        return "empty (0 bytes)"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile as error:
        return f"truncated or not a checkpoint archive ({size} bytes: {error})"
    except (OSError, EOFError, ValueError, NotImplementedError) as error:
        return f"truncated or corrupted ({size} bytes: {type(error).__name__}: {error})"
    return f"corrupted: CRC-32 mismatch in record '{bad}'" if bad is not None else None


def _read(path: Path, map_location: str | torch.device) -> dict[str, Any]:
    """Verify and load ``path``; the ``CheckpointError`` says what is wrong with it, in one line."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    damage = _damage(path)
    if damage is not None:
        raise CheckpointError(f"checkpoint {path} is unreadable ({damage})")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        # torch's own message goes on to advise loading the file unsafely; do not pass that advice on.
        raise CheckpointError(f"checkpoint {path} refused: contains Python objects (an omnissl checkpoint holds "
                              f"only tensors and plain values; nothing in it was run)") from error
    except Exception as error:
        detail = " ".join(str(error).split()) or type(error).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable ({detail})") from error
    if not isinstance(payload, dict) or "model" not in payload or "step" not in payload:
        raise CheckpointError(f"checkpoint {path} lacks 'model'/'step': not an omnissl training checkpoint")
    return payload


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and verify one checkpoint; on failure say which earlier checkpoint is usable."""
    try:
        return _read(path, map_location)
    except CheckpointError as error:
        earlier = [p for p in list_checkpoints(path.parent) if p.name < path.name]
        offer = f"; the previous checkpoint is {earlier[-1]}" if earlier and _PATTERN.match(path.name) else ""
        raise CheckpointError(f"{error}{offer}") from error.__cause__


def load_resumable(directory: Path, *, map_location: str | torch.device = "cpu"
                   ) -> tuple[Path, dict[str, Any], list[tuple[Path, str]]]:
    """The newest step checkpoint in ``directory`` that verifies, its payload, and ``(path, why)`` for each newer
    one passed over, so the caller can say which file it used instead of which."""
    passed_over: list[tuple[Path, str]] = []
    for path in reversed(list_checkpoints(directory)):
        try:
            return path, _read(path, map_location), passed_over
        except CheckpointError as error:
            passed_over.append((path, str(error)))
    tried = "; ".join(why for _, why in reversed(passed_over)) or f"no step_*.pt file in {directory}"
    raise CheckpointError(f"no usable checkpoint to resume from: {tried}")


def load_for_resume(directory: Path, *, map_location: str | torch.device = "cpu",
                    move_aside: bool = True) -> tuple[Path, dict[str, Any], list[str]]:
    """:func:`load_resumable`, with each damaged newer checkpoint renamed ``NAME.corrupt`` (kept for inspection,
    out of ``keep_last``'s count and of later resumes) and one note per file naming it and the one used."""
    path, payload, passed_over = load_resumable(directory, map_location=map_location)
    notes = []
    for bad, why in passed_over:
        aside = bad.with_name(bad.name + ".corrupt")
        if move_aside:
            bad.replace(aside)
        notes.append(f"{why}; resuming from {path} instead" + (f" (the damaged file is now {aside})"
                                                                 if move_aside else ""))
    return path, payload, notes
