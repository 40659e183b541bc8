"""A lazily loaded image folder keeps paths only: building it decodes nothing (decode calls are counted), a batch
decodes exactly its images, to the same pixels the in-memory path holds; the automatic choice follows the size."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import omnissl_image.data as image_data
import pytest
import torch
from omnissl_image import folder
from shardkit import WORDS, png

from omnissl.core.registry import DATASETS, load_plugins
from omnissl.data.tensors import evaluation_loader, training_loader

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def tree(data_root: Path, tmp_path: Path) -> Path:
    arrays = np.load(data_root / "mnist" / "mnist_test.npz")
    for i in range(12):
        split = "test" if i >= 9 else "train"
        path = tmp_path / "digits" / split / WORDS[int(arrays["y"][i]) % 3] / f"{i}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png(np.kron(arrays["x"][i], np.ones((2, 2), dtype=np.uint8))))  # 56 px: resized to 20
    return tmp_path


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = folder.decode_image

    def counted(**kwargs: Any) -> torch.Tensor:
        calls.append(str(kwargs["path"]))
        return real(**kwargs)

    monkeypatch.setattr(folder, "decode_image", counted)
    return calls


def _build(root: Path, **params: Any) -> Any:
    load_plugins()
    return DATASETS.get("image_folder").builder(root="digits", image_size=20, data_root=root, **params)


def test_a_lazy_folder_decodes_nothing_up_front_and_only_the_batch_after(tree: Path, decodes: list[str]) -> None:
    bundle = _build(tree, in_memory=False)
    assert decodes == [] and len(bundle.train) == 9 and len(bundle.test) == 3
    batch = next(iter(training_loader(bundle.train, bundle, batch_size=4, seed=0, start_batch=0, num_workers=0)))
    assert len(decodes) == 4 and batch["x"].shape == (4, 3, 20, 20) and batch["x"].dtype == torch.uint8
    decodes.clear()
    eager = _build(tree, in_memory=True)
    assert len(decodes) == 12  # the in-memory path decodes every image at build time
    for row, i in enumerate(batch["index"].tolist()):
        assert torch.equal(batch["x"][row], eager.train.images[i]) and int(batch["y"][row]) == int(eager.train.labels[i])
    test = torch.cat([b["x"] for b in evaluation_loader(bundle.test, bundle, batch_size=2)])
    assert torch.equal(test, eager.test.images)


def test_the_automatic_choice_follows_the_decoded_size(tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert isinstance(_build(tree).train, image_data.ImageTensorDataset)  # 9 small images: in memory
    monkeypatch.setattr(image_data, "IN_MEMORY_BYTES", 9 * 3 * 20 * 20 - 1)
    assert isinstance(_build(tree).train, image_data.LazyImageFolder)


def test_a_lazy_folder_trains_with_two_workers(tree: Path) -> None:
    bundle = _build(tree, in_memory=False)
    batches = iter(training_loader(bundle.train, bundle, batch_size=3, seed=0, start_batch=0, num_workers=2))
    seen = [i for _ in range(3) for i in next(batches)["index"].tolist()]
    assert sorted(seen) == list(range(9))
