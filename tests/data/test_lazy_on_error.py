"""``data.on_error`` for a lazy ``image_folder`` (issue 19): an undecodable file is a ``DataError`` naming it by
default; under ``skip`` it is left out of its batch and counted like a shard skip (``data/skipped`` in
metrics.jsonl, ``TrainResult.data_skipped``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from omnissl.core.config import recipe_from_dict
from omnissl.core.errors import DataError
from omnissl.train.assemble import assemble
from omnissl.train.runner import Trainer

pytestmark = pytest.mark.usefixtures("one_thread")
BAD = "train/b/broken.png"


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    for i in range(5):
        path = tmp_path / "folder" / "train" / "ab"[i % 2] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(path)
    (tmp_path / "folder" / BAD).write_bytes(b"\x89PNG but not really")
    return tmp_path


def _recipe(on_error: str, in_memory: bool | None = None) -> dict:
    return {
        "name": "lazy-skip", "plugins": ["image"], "seed": 0,
        "data": {"name": "image_folder", "root": "folder", "image_size": 8, "in_memory": in_memory,
                 "on_error": on_error},
        "encoder": {"name": "resnet10", "width": 4, "cifar_stem": True},
        "augment": {"global": {"count": 2, "ops": [{"name": "random_resized_crop", "size": 8, "scale": [0.5, 1.0]}]}},
        "objective": {"name": "simclr", "temperature": 0.2, "projection_dim": 8, "hidden_dim": 16},
        "train": {"steps": 1, "batch_size": 6, "lr": 0.003, "warmup_steps": 0, "log_every": 1,
                  "checkpoint_every": 1, "knn_every": 0, "max_minutes": None, "device": "cpu", "num_workers": 0},
    }


@pytest.mark.parametrize("in_memory", [False, None])  # lazy: when fetched; small folder, unset: while loading
def test_default_names_the_broken_file(root: Path, in_memory: bool | None) -> None:
    with pytest.raises(DataError, match="broken.png"):
        bundle = assemble(recipe_from_dict(_recipe("raise", in_memory)), root=root).bundle
        bundle.train.__getitems__(list(range(len(bundle.train))))


def test_skip_leaves_one_out_and_counts_it(root: Path, tmp_path: Path) -> None:
    """``in_memory`` unset: under ``skip`` even this small folder stays lazy (only that path can skip)."""
    bundle = assemble(recipe_from_dict(_recipe("skip")), root=root).bundle
    batch = bundle.collate(bundle.train.__getitems__(list(range(6))))
    assert batch["x"].shape[0] == 5 and int(batch["skipped"]) == 1
    assert str(root / "folder" / BAD) not in [bundle.train.paths[i] for i in batch["index"].tolist()]
    # one step of 6 = one whole epoch of the 6 files: exactly one skip, in metrics.jsonl and the run's total
    result = Trainer(assemble(recipe_from_dict(_recipe("skip")), root=root), tmp_path / "run").fit()
    row = next(json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
               if "loss" in line)
    assert row["data/skipped"] == 1.0 and result.data_skipped == 1


@pytest.mark.parametrize("on_error", ["raise", "skip"])
def test_lazy_audio_folder(tmp_path: Path, on_error: str) -> None:
    from omnissl_speech.data import audio_folder

    rng = np.random.default_rng(0)
    for i in range(4):
        path = tmp_path / "clips" / "train" / "ab"[i % 2] / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(path, rng.standard_normal(800).astype(np.float32) * 0.1, 8000)
    (tmp_path / "clips" / "train" / "a" / "broken.wav").write_bytes(b"RIFF but not really")
    bundle = audio_folder(root="clips", sample_rate=8000, test_fraction=0.0, data_root=tmp_path,
                          in_memory=False if on_error == "raise" else None, on_error=on_error)  # type: ignore[arg-type]
    indices = list(range(len(bundle.train)))
    assert len(indices) == 5
    if on_error == "raise":
        with pytest.raises(DataError, match="broken.wav"):
            bundle.train.__getitems__(indices)
        return
    assert type(bundle.train).__name__ == "LazyAudioDataset"  # in_memory unset + skip: lazy, small as it is
    batch = bundle.collate(bundle.train.__getitems__(indices))
    assert batch["x"]["wave"].shape[0] == 4 and batch["y"].shape == (4,) and int(batch["skipped"]) == 1
