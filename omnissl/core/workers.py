"""Forked DataLoader workers must not outlive, or hold the run lock of, the trainer that forked them.

A worker is ``fork``-ed from the trainer and so inherits every open descriptor, the ``RUN_DIR/.lock`` one
included (``O_CLOEXEC`` only acts on ``exec``). A ``flock`` lives until the last descriptor of its open file is
closed, so after the trainer is SIGKILLed its orphaned workers kept the run directory locked until torch's
watchdog noticed the dead parent (about 5 s): a scheduler's immediate restart was refused as "in use".

Two measures, both here so the core, data and train layers share them:

* :func:`keep_out_of_children` names a descriptor that a forked child closes at once (``os.register_at_fork``,
  so it covers every fork, before any user code runs in the child); the parent's lock is untouched.
* :func:`worker_init` (every training loader's ``worker_init_fn``) asks Linux to SIGKILL the worker when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``), so orphans do not linger holding memory or shared tensors.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_PARENT_ONLY: set[int] = set()
_HOOKED = False


def _close_in_child() -> None:
    for fd in _PARENT_ONLY:
        try:
            os.close(fd)
        except OSError:  # already closed: nothing to drop
            pass
    _PARENT_ONLY.clear()


def keep_out_of_children(fd: int) -> None:
    """Close ``fd`` in every process this one forks from now on (until :func:`forget` is called)."""
    global _HOOKED
    if not _HOOKED and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_close_in_child)
        _HOOKED = True
    _PARENT_ONLY.add(fd)


def forget(fd: int) -> None:
    """``fd`` is about to be closed in this process: its number may be reused, so children must keep it."""
    _PARENT_ONLY.discard(fd)


def _die_with_parent() -> bool:
    """Linux only: SIGKILL this process when the thread that forked it exits. False where unsupported.

    The signal follows the forking *thread*; the trainer iterates its loader on the main thread, whose exit is
    the process's."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc / no prctl (musl variants, sandboxes): workers still end via torch
        return False


def worker_init(parent: int, worker_id: int) -> None:
    """``worker_init_fn`` of the training loaders (bind ``parent=os.getpid()`` with ``functools.partial``).

    Drops any parent-only descriptor still open (a worker started by a fork this module did not see) and ties
    the worker's life to the trainer's; when the trainer already died before the tie was made, exit now."""
    del worker_id  # every worker does the same
    _close_in_child()
    if _die_with_parent() and os.getppid() != parent:
        os._exit(0)
