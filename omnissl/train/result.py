"""What one ``Trainer.fit`` call returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class TrainResult:
    run_dir: Path
    steps_done: int  # the step the run stands at now (the total, counting a resumed run's earlier steps)
    seconds: float
    samples_per_second: float
    stopped_because: str
    cpu_seconds: float = 0.0
    last_logs: dict[str, float] = field(default_factory=dict)
    start_step: int = 0  # where this invocation began (non-zero on resume)
    data_skipped: int = 0  # samples left out under data.on_error: skip, over the whole run (resumes included)

    @property
    def steps_trained(self) -> int:
        """The steps this invocation trained: what its seconds and samples/s are about."""
        return self.steps_done - self.start_step
