"""``data.on_error: skip`` through the trainer: each step's skipped samples are ``data/skipped`` in metrics.jsonl,
the running ``data/skipped_total`` and the run's ``TrainResult.data_skipped`` count every one, and a stopped and
resumed run logs the same counts as an uninterrupted one (the total is kept in the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shardkit import mnist_samples

from omnissl.core.config import recipe_from_dict
from omnissl.data.shard_writer import write_shards
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
STEPS = 6
RECIPE = {
    "name": "skip-simclr", "plugins": ["image"], "seed": 0,
    "data": {"name": "webdataset", "shards": "bad/train", "fields": {"image": "png"}, "label": "cls",
             "decode": {"image": {"image_size": 16}}, "shuffle_buffer": 4, "on_error": "skip"},
    "encoder": {"name": "resnet10", "width": 4, "cifar_stem": True},
    "augment": {"global": {"count": 2, "ops": [{"name": "random_resized_crop", "size": 16, "scale": [0.5, 1.0]}]}},
    "objective": {"name": "simclr", "temperature": 0.2, "projection_dim": 8, "hidden_dim": 16},
    "train": {"steps": STEPS, "batch_size": 4, "lr": 0.003, "warmup_steps": 1, "log_every": 2,
              "checkpoint_every": 1, "knn_every": 0, "max_minutes": None, "device": "cpu", "num_workers": 0},
}


@pytest.fixture(scope="module")
def root(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("skip_metrics")
    samples = mnist_samples(data_root, 8, captions=False)
    for bad in (1, 6):  # two undecodable images: one skip each per epoch of 8 samples (2 batches)
        samples[bad][1]["png"] = b"\x89PNG but not really"
    write_shards(iter(samples), out=folder / "bad" / "train", shard_size=8)
    return folder


class StopAfter(Trainer):
    """Stops like a SIGTERM would after ``stop_at`` steps (checkpoint saved, resumable)."""

    stop_at = 0

    def train_step(self, batches: Any) -> Any:
        result = super().train_step(batches)
        if self.step + 1 == self.stop_at:
            self._stop_signal = "SIGTERM"
        return result


def _records(run: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "samples_per_s")} for r in rows if "loss" in r]


def test_skips_are_logged_per_step_totalled_and_survive_resume(root: Path, tmp_path: Path) -> None:
    recipe = recipe_from_dict(RECIPE)
    reference = Trainer(assemble(recipe, root=root), tmp_path / "reference").fit()
    rows = _records(tmp_path / "reference")
    assert [r["step"] for r in rows] == [2, 4, 6]
    # 6 steps × 4 samples = 3 epochs of 8, two bad samples each: 6 skipped, 2 per logged pair of steps
    assert [r["data/skipped"] for r in rows] == [2.0, 2.0, 2.0]
    assert [r["data/skipped_total"] for r in rows] == [2.0, 4.0, 6.0]
    assert reference.data_skipped == 6 and reference.last_logs["data/skipped_total"] == 6.0

    StopAfter.stop_at = 3  # between two metrics lines: the pending count must come back from the checkpoint
    stopped = StopAfter(assemble(recipe, root=root), tmp_path / "resumed").fit()
    assert stopped.stopped_because == "SIGTERM" and stopped.steps_done == 3
    resumed = Trainer(assemble(recipe, root=root), tmp_path / "resumed", resume=True).fit()
    assert resumed.data_skipped == 6
    assert _records(tmp_path / "resumed") == rows


def test_in_memory_runs_log_no_skip_keys(tmp_path: Path) -> None:
    raw = {**RECIPE, "data": {"name": "digits", "upscale": 16}, "train": {**RECIPE["train"], "steps": 2}}
    result = Trainer(assemble(recipe_from_dict(raw), synthetic=16), tmp_path / "run").fit()
    assert result.data_skipped == 0 and not any(k.startswith("data/") for r in _records(tmp_path / "run") for k in r)
