"""Small shards for the data tests, made in a temp folder from the shared MNIST / FSDD files (never written into
the data root)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np

from omnissl.core.config import Component
from omnissl.core.instantiate import build_component
from omnissl.core.registry import DATASETS, load_plugins
from omnissl.data.shard_writer import write_shards

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def mnist_samples(data_root: Path, count: int, *, captions: bool = True) -> list[tuple[str, dict[str, bytes]]]:
    arrays = np.load(data_root / "mnist" / "mnist_test.npz")
    x, y = arrays["x"][:count], arrays["y"][:count]
    out = []
    for i in range(count):
        members = {"png": png(x[i]), "cls": str(int(y[i])).encode()}
        if captions:
            members["txt"] = f"a handwritten {WORDS[int(y[i])]}".encode()
        out.append((f"mnist{i:06d}", members))
    return out


def mnist_shards(data_root: Path, out: Path, *, train: int = 160, test: int = 40, shard_size: int = 20,
                 captions: bool = True, format: str = "webdataset") -> Path:
    """``out/train`` and ``out/test`` shard folders (with manifests); returns ``out``."""
    samples = mnist_samples(data_root, train + test, captions=captions)
    write_shards(iter(samples[:train]), out=out / "train", shard_size=shard_size, classes=list(WORDS), format=format)
    write_shards(iter(samples[train:]), out=out / "test", shard_size=shard_size, classes=list(WORDS), format=format)
    return out


def shard_bundle(root: Path, **params: Any) -> Any:
    load_plugins()
    spec = {"name": "webdataset", "shards": "train", "test_shards": "test", **params}
    return build_component(DATASETS, Component(**spec), "data", {"data_root": root, "seed": 0})


def table_shards(data_root: Path, out: Path, *, name: str = "adult", shard_size: int = 100,
                 **params: Any) -> Path:
    """``out/train`` and ``out/test`` Parquet row shards of a registered table, as ``omnissl shard NAME`` writes
    them (``params``: e.g. ``max_train`` to keep it small); returns ``out``."""
    from omnissl.data.shard_sources import from_dataset

    source = from_dataset(name, data_root=data_root, params=params)
    for split in source.splits:
        write_shards(source.samples(split, seed=0), out=out / split, shard_size=shard_size, format=source.format,
                     classes=source.classes, prefix=split, extra=source.extra)
    return out
