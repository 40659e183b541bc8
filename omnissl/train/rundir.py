"""The run directory: one process at a time (an advisory lock), never overwritten, and never a dead end.

A resubmitted job that overlaps the old one is the usual scheduler mistake; two trainers on one directory would
interleave their metrics and overwrite each other's checkpoints. ``RUN_DIR/.lock`` is held with ``fcntl.flock``
for the whole run (train and resume). The kernel drops a flock when its process dies, so a lock file left by a
killed run never blocks; its text (pid, host, start time) only serves to name the holder in the refusal.
Forked DataLoader workers would inherit the lock's descriptor and keep the flock after the trainer is killed, so
the descriptor is closed in every forked child (:mod:`omnissl.core.workers`).
On file systems without flock support (some network mounts) the lock is skipped with a note rather than
refusing to train.
"""

from __future__ import annotations

import errno
import os
import shutil
import socket
import time
from pathlib import Path

from omnissl.core.errors import RunDirectoryError
from omnissl.core.workers import forget, keep_out_of_children
from omnissl.train import checkpoint as ckpt
from omnissl.train.logging import write_note

try:
    import fcntl
except ImportError:  # not POSIX: no advisory locks
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"
# What a run writes before its first checkpoint; a directory holding only these (and no checkpoint) may be reused.
_EARLY_FILES = {"recipe.yaml", "resolved.yaml", "metrics.jsonl", "notes.log"}
_EARLY_DIRS = {"tensorboard", "artifacts", "checkpoints"}


class RunLock:
    """An exclusive ``flock`` on ``RUN_DIR/.lock``; :meth:`release` (or process death) gives it back."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_NAME
        self._fd: int | None = None
        if fcntl is None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(fd)
            if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                holder = self.path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
                raise RunDirectoryError(f"run directory {run_dir} is in use by {holder} (lock {self.path}); wait "
                                        f"for that run to end or choose another --run-dir") from None
            write_note(run_dir, f"could not lock {self.path} ({error.strerror}); not guarding against a second "
                                f"process on this run directory")
            return
        self._fd = fd
        keep_out_of_children(fd)
        os.ftruncate(fd, 0)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S")
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()} since {stamp}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            forget(self._fd)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()


def _reusable(run_dir: Path) -> bool:
    """True when ``run_dir`` holds only what a run writes before its first checkpoint (a run killed early)."""
    entries = [p for p in run_dir.iterdir() if p.name != LOCK_NAME]
    known = all(p.name in _EARLY_FILES if p.is_file() else p.name in _EARLY_DIRS and p.is_dir() for p in entries)
    checkpoints = run_dir / "checkpoints"
    inside = list(checkpoints.iterdir()) if checkpoints.is_dir() else []
    return known and all(ckpt.TEMP_PATTERN.match(p.name) for p in inside)


def _clear_early_run(run_dir: Path) -> None:
    for path in run_dir.iterdir():
        if path.name in _EARLY_DIRS and path.is_dir():
            shutil.rmtree(path)
        elif path.name in _EARLY_FILES:
            path.unlink()


def prepare_run_dir(run_dir: Path, *, resume: bool) -> RunLock:
    """Lock ``run_dir`` and check it may be used; return the held lock.

    An existing directory needs ``resume=True``, except one a run left before its first checkpoint: a fresh start
    reuses it (there is nothing to resume). Stale checkpoint temp files of killed writes are removed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    try:
        has_checkpoint = bool(ckpt.list_checkpoints(run_dir / "checkpoints"))
        if resume and not has_checkpoint:
            hint = (": the run stopped before its first checkpoint; start it again with the same command without "
                    "--resume (this directory is reused)") if _reusable(run_dir) else ""
            raise RunDirectoryError(f"--resume: no checkpoint in {run_dir / 'checkpoints'} to resume from{hint}")
        if not resume and any(p.name != LOCK_NAME for p in run_dir.iterdir()):
            if has_checkpoint or not _reusable(run_dir):
                raise RunDirectoryError(f"run directory {run_dir} already exists; pass --resume to continue it or "
                                        f"choose another --run-dir")
            _clear_early_run(run_dir)
            write_note(run_dir, f"{run_dir} had no checkpoint (its run stopped before the first one): starting it "
                                f"again from step 0")
        removed = ckpt.remove_stale_temps(run_dir / "checkpoints")
        if removed:
            write_note(run_dir, f"removed {removed} stale checkpoint temp file(s) left by an interrupted write in "
                                f"{run_dir / 'checkpoints'}")
    except BaseException:
        lock.release()
        raise
    return lock
