"""Metrics to ``metrics.jsonl`` and TensorBoard, notes to ``notes.log``, and the progress bar."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm


class MetricsWriter:
    """Appends one JSON object per record. On resume, records from steps at or after the resumed step
    (written after the last checkpoint by the interrupted run) are removed so the curve is not duplicated."""

    def __init__(self, run_dir: Path, *, enabled: bool = True, truncate_from_step: int = 0) -> None:
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.notes_path = run_dir / "notes.log"
        self._tensorboard: Any = None
        if not enabled:
            return
        if truncate_from_step and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= truncate_from_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = self.path.open("a", encoding="utf-8")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self._tensorboard = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        except ImportError:  # TensorBoard is optional at run time; JSONL is the record
            self._tensorboard = None

    def write(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self._file.flush()
        if self._tensorboard is not None:
            for key, value in values.items():
                self._tensorboard.add_scalar(key, value, step)

    def note(self, message: str) -> None:
        print(f"omnissl: {message}", file=sys.stderr)
        if self.enabled:
            with self.notes_path.open("a", encoding="utf-8") as handle:
                handle.write(message + "\n")

    def close(self) -> None:
        if self.enabled:
            self._file.close()
            if self._tensorboard is not None:
                self._tensorboard.close()


def progress(*, total: int, initial: int, enabled: bool) -> Any:
    return tqdm(total=total, initial=initial, disable=not enabled or None, desc="train", unit="step",
                dynamic_ncols=True, leave=False)
