"""Data plumbing shared by every modality: a resumable batch order, the loaders built on it, and the one in-memory
tensor dataset (+ its batched collate) the plugins build on."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from omnissl.core.errors import DataError
from omnissl.core.types import DataBundle
from omnissl.core.workers import worker_init
from omnissl.data.stream import ShardStream


class StreamBatchSampler:
    """Batches cut from an endless stream of per-epoch permutations.

    Position ``p`` of the stream is sample ``perm_e[p mod N]`` with ``e = p // N`` and ``perm_e`` drawn from
    ``seed + e``, so batch ``k`` is a pure function of ``(seed, k)``: nothing is dropped (a batch may straddle
    two epochs), and a resumed run sees exactly the batches the uninterrupted run would have seen. With DDP,
    rank ``r`` of ``W`` takes its slice of each global batch of ``batch_size × W`` positions.
    """

    def __init__(self, num_samples: int, *, batch_size: int, seed: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1) -> None:
        if num_samples < 1:
            raise ValueError("cannot sample batches from an empty dataset")
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.seed = seed
        self.start_batch = start_batch
        self.rank = rank
        self.world_size = world_size
        self._cached_epoch = -1
        self._cached_perm: torch.Tensor | None = None

    def _permutation(self, epoch: int) -> torch.Tensor:
        if epoch != self._cached_epoch:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._cached_perm = torch.randperm(self.num_samples, generator=generator)
            self._cached_epoch = epoch
        assert self._cached_perm is not None
        return self._cached_perm

    def batch(self, index: int) -> list[int]:
        start = (index * self.world_size + self.rank) * self.batch_size
        out: list[int] = []
        for position in range(start, start + self.batch_size):
            epoch, offset = divmod(position, self.num_samples)
            out.append(int(self._permutation(epoch)[offset]))
        return out

    def __iter__(self) -> Iterator[list[int]]:
        index = self.start_batch
        while True:
            yield self.batch(index)
            index += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return 2**62


def training_loader(dataset: Dataset[Any], bundle: DataBundle, *, batch_size: int, seed: int, start_batch: int,
                    num_workers: int, rank: int = 0, world_size: int = 1, pin_memory: bool = False) -> DataLoader[Any]:
    """Batches from ``start_batch`` on, endless; sharded streams (:mod:`omnissl.data.stream`) position themselves,
    every other dataset is drawn by :class:`StreamBatchSampler`. Either way batch ``k`` depends only on the seed."""
    if isinstance(dataset, ShardStream):
        return dataset.loader(batch_size=batch_size, seed=seed, start_batch=start_batch, num_workers=num_workers,
                      rank=rank, world_size=world_size, pin_memory=pin_memory)
    sampler = StreamBatchSampler(len(dataset), batch_size=batch_size, seed=seed,  # type: ignore[arg-type]
                                 start_batch=start_batch, rank=rank, world_size=world_size)
    # A private generator: creating the iterator must not draw from the global RNG (exact resume).
    generator = torch.Generator().manual_seed(seed + start_batch)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=bundle.collate, num_workers=num_workers,
                      pin_memory=pin_memory, persistent_workers=num_workers > 0, generator=generator,
                      worker_init_fn=partial(worker_init, os.getpid()))


def evaluation_loader(dataset: Dataset[Any], bundle: DataBundle, *, batch_size: int) -> DataLoader[Any]:
    """Every sample exactly once, in order."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, drop_last=False, collate_fn=bundle.collate)


class Subset(Dataset[Any]):
    """A view on ``dataset`` at ``indices`` that keeps batched fetching (``__getitems__``) when available."""

    def __init__(self, dataset: Dataset[Any], indices: list[int]) -> None:
        self.dataset = dataset
        self.indices = indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[self.indices[i]]

    def __getitems__(self, items: list[int]) -> Any:
        mapped = [self.indices[i] for i in items]
        getitems = getattr(self.dataset, "__getitems__", None)
        return getitems(mapped) if getitems else [self.dataset[i] for i in mapped]


class TensorRows(Dataset[dict[str, Any]]):
    """In-memory rows: ``x`` (a tensor ``(N, ...)`` or a dict of such tensors) and int64 labels ``(N,)``.

    The one in-memory dataset behind the image, time-series and tabular plugins. ``__getitems__`` indexes every
    tensor once per batch (one gather instead of ``B`` item copies and a stack), so with :func:`collate_rows` a
    batch costs one ``index_select`` per tensor whatever the batch size.
    """

    def __init__(self, x: Tensor | dict[str, Tensor], labels: Tensor, *, source: str = "") -> None:
        parts = x if isinstance(x, dict) else {"": x}
        for name, part in parts.items():
            if part.shape[0] != labels.shape[0]:
                field = f" '{name}'" if name else ""
                raise DataError(f"{source}: {part.shape[0]} rows of x{field} {tuple(part.shape)} but "
                                f"{labels.shape[0]} labels")
        self.x = {name: part.contiguous() for name, part in x.items()} if isinstance(x, dict) else x.contiguous()
        self.labels = labels.long()
        self.source = source

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def _take(self, index: Any) -> Tensor | dict[str, Tensor]:
        if isinstance(self.x, dict):
            return {name: part[index] for name, part in self.x.items()}
        return self.x[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"x": self._take(index), "y": self.labels[index], "index": index}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        index = torch.as_tensor(indices, dtype=torch.long)
        return {"x": self._take(index), "y": self.labels[index], "index": index}


def _stack(values: Sequence[Any]) -> Any:
    if isinstance(values[0], dict):
        return {name: torch.stack([v[name] for v in values]) for name in values[0]}
    return torch.stack(list(values))


def collate_rows(samples: Any) -> dict[str, Any]:
    """A batch from :meth:`TensorRows.__getitems__` as it is, or a list of items stacked (``x`` tensor or dict)."""
    if isinstance(samples, dict):  # already batched by __getitems__
        return samples
    return {"x": _stack([s["x"] for s in samples]), "y": torch.stack([torch.as_tensor(s["y"]) for s in samples]),
            "index": torch.as_tensor([s["index"] for s in samples])}
