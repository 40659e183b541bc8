"""What a training run shows while it runs: a tqdm bar on a terminal, plain log lines everywhere else.

tqdm draws nothing when its stream is not a terminal, so under nohup, SLURM, CI or ``> log`` a run used to print
nothing until it ended. There, every ``log_every`` steps one self-contained line goes to stdout instead
(``step 20/60 | loss 4.2451 | lr 3.00e-03 | 263 samples/s | ETA 0:00:24``), which greps and tails well.
"""

from __future__ import annotations

import sys
import time
from datetime import timedelta
from typing import Any, TextIO

from tqdm.auto import tqdm


def is_terminal() -> bool:
    """A bar only helps when both streams reach a terminal: the bar is drawn on stderr, the lines go to stdout."""
    return sys.stdout.isatty() and sys.stderr.isatty()


def _eta(seconds: float) -> str:
    return str(timedelta(seconds=max(0, round(seconds))))


class Progress:
    """The bar (terminal) or the log lines (anything else) of one training invocation.

    ``initial`` is the step this invocation started from (non-zero on resume): the ETA and the rate are computed
    from this invocation's steps only, so a resume does not count the earlier run's steps as instantly done.
    """

    def __init__(self, *, total: int, initial: int, enabled: bool, terminal: bool | None = None,
                 stream: TextIO | None = None) -> None:
        self.total, self.initial, self.enabled = total, initial, enabled
        self.terminal = is_terminal() if terminal is None else terminal
        self.stream = stream
        self.started = self._last_time = time.perf_counter()
        self._samples_since_line = 0
        self._bar: Any = None
        if enabled and self.terminal:
            # leave=True: the final step, loss and rate stay in the scrollback when the run ends.
            self._bar = tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True,
                             leave=True, file=stream or sys.stderr)

    def update(self, *, step: int, logs: dict[str, float] | None, samples: int) -> None:
        """After each step: ``logs`` (loss, lr, ...) is given on log steps only."""
        self._samples_since_line += samples
        if self._bar is not None:
            if logs is not None:
                self._bar.set_postfix(loss=f"{logs['loss']:.4f}", lr=f"{logs['lr']:.2e}",
                                      sps=f"{logs.get('samples_per_s', 0):.0f}", refresh=False)
            self._bar.update(1)
            return
        if not self.enabled or logs is None:
            return
        now = time.perf_counter()
        rate = self._samples_since_line / max(now - self._last_time, 1e-9)
        per_step = (now - self.started) / max(step - self.initial, 1)
        line = (f"step {step}/{self.total} | loss {logs['loss']:.4f} | lr {logs['lr']:.2e} | {rate:.0f} samples/s"
                f" | ETA {_eta(per_step * (self.total - step))}")
        print(line, file=self.stream or sys.stdout, flush=True)  # flush: a log file is read while it grows
        self._samples_since_line, self._last_time = 0, now

    def close(self) -> None:
        """End the bar on its own line, so whatever is printed next (a stop note, the summary) starts a line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
