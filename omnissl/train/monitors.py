"""What runs after a training step on its own period: the collapse monitor and the k-NN monitor (whose best score on
the validation split carved from train — recorded in ``RUN_DIR/splits.json`` — picks ``checkpoints/best.pt``).
Kept out of the loop so the loop reads as the step order it is."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omnissl.core.config import TrainConfig
from omnissl.core.errors import OmnisslError
from omnissl.eval.collapse import CollapseMonitor, collapse_stats
from omnissl.train import checkpoint as ckpt
from omnissl.train.knn_monitor import KnnMonitor
from omnissl.train.logging import MetricsWriter, atomic_write_text


class CollapseError(OmnisslError, RuntimeError):
    """The collapse monitor fired and the run was asked to stop on collapse."""


class StepMonitors:
    def __init__(self, *, config: TrainConfig, knn: KnnMonitor | None, enabled: bool) -> None:
        self.config, self.knn, self.enabled = config, knn, enabled
        self.collapse = CollapseMonitor()
        self.best_knn = float("-inf")
        self.recorded_split = False

    def after_step(self, *, step: int, output: Any, writer: MetricsWriter, payload: Callable[[], dict[str, Any]],
                   checkpoints: Path, save_checkpoint: Callable[[], Any]) -> None:
        """Record what is due at ``step``; raise :class:`CollapseError` (after a checkpoint) when asked to."""
        config = self.config
        if output.embeddings is not None and step % config.monitor_every == 0 and self.enabled:
            stats = collapse_stats(output.embeddings)
            writer.write(step, {f"collapse/{k}": v for k, v in stats.items()})
            if self.collapse.is_collapsed(stats):
                writer.note(f"step {step}: possible collapse: {self.collapse.describe(stats)}")
                if config.stop_on_collapse:
                    save_checkpoint()
                    raise CollapseError(f"collapse at step {step}: {self.collapse.describe(stats)}")
        if self.knn is not None and step % config.knn_every == 0:
            if not self.recorded_split and self.knn.record() is not None:
                atomic_write_text(checkpoints.parent / "splits.json", json.dumps(self.knn.record(), indent=1) + "\n")
                self.recorded_split = True
            measured = self.knn.measure()
            writer.write(step, measured)
            score = measured.get(f"knn_top1_k{self.knn.k}")
            if score is not None and score > self.best_knn:
                self.best_knn = score
                ckpt.atomic_save({**payload(), "knn": score}, checkpoints / "best.pt")
