"""Training streams over shards: each (rank, worker) reads its own shards, and batch ``k`` is a pure function of
``(seed, k, world size, num_workers)``, so a resumed run sees the batches the uninterrupted run would have seen.

Layout (``S = world_size × max(num_workers, 1)`` slots; slot ``(r, w) = r·W + w``):

- epoch ``e`` of the shard list is a permutation drawn from ``seed`` and ``e``; slot ``s`` reads shards
  ``perm_e[s::S]`` in that order, so every shard is read by exactly one slot per epoch (disjoint coverage) and,
  with ``N`` shards, a slot reads ``⌊N/S⌋`` or ``⌈N/S⌉`` of them (the documented remainder: slots progress at
  one batch rate, so a slot with fewer samples starts its next epoch sooner);
- inside a shard a seeded shuffle buffer (``shuffle_buffer`` samples, seeded by ``seed``, ``e`` and the shard)
  reorders the samples; it restarts at each shard, so resuming re-reads at most one shard's bytes (undecoded);
- a slot's samples, epoch after epoch, are cut into batches of ``batch_size``; rank ``r``'s batch ``k`` is batch
  ``k // W`` of its slot ``k mod W``. DataLoader takes one batch per worker in turn, so after resuming at ``k0``
  worker ``w`` plays slot ``(k0 + w) mod W``.

A sample skipped under ``on_error: skip`` leaves its batch one row smaller rather than pulling in the next sample,
so every later batch keeps its place and resume stays exact. Changing the world size or ``num_workers`` gives a
different (equally valid) order: exact resume holds for an unchanged set-up.
"""

from __future__ import annotations

import copy
import os
import random
from collections.abc import Iterator
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from omnissl.core.errors import DataError
from omnissl.core.workers import worker_init
from omnissl.data.samples import SampleDecoder
from omnissl.data.shardlist import ShardSet
from omnissl.data.shardread import ShardIndex, iter_shard


class ShardMap(Dataset[dict[str, Any]]):
    """Every sample of local shards by global id, decoded per item (evaluation splits, ``bundle.train[i]``)."""

    def __init__(self, shards: ShardSet, decoder: SampleDecoder) -> None:
        self.shards, self.decoder = shards, decoder
        self.index = ShardIndex(shards)

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        key, raw = self.index[i]
        shard_no, _ = self.index.locate(i)
        sample = self.decoder.decode(key, raw, shard=self.shards.shards[shard_no].url)
        return None if sample is None else {**sample, "index": i}


def shuffled(items: Iterator[Any], *, size: int, rng: random.Random) -> Iterator[Any]:
    """webdataset's shuffle buffer, deterministic: fill ``size``, then emit a random slot and refill it."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = rng.randrange(size)
        buffer[j], item = item, buffer[j]
        yield item
    rng.shuffle(buffer)
    yield from buffer


class ShardStream(Dataset[dict[str, Any]]):
    """The training split of a sharded dataset. :meth:`loader` streams it, positioned (rank, workers, first batch);
    as a map-style dataset it reads items by global id (local shards only), for cost estimates and dry runs."""

    def __init__(self, shards: ShardSet, decoder: SampleDecoder, *, shuffle_buffer: int = 1000,
                 random_access: ShardMap | None = None) -> None:
        self.shards, self.decoder, self.shuffle_buffer = shards, decoder, shuffle_buffer
        self.random_access = random_access
        self.counts = [s.samples for s in shards.shards]
        self.starts = shards.offsets()
        self.seed, self.batch_size, self.start_batch = 0, 1, 0
        self.rank, self.world_size, self.workers = 0, 1, 1

    def __len__(self) -> int:
        return self.shards.samples

    def __getitem__(self, i: int) -> dict[str, Any] | None:  # cost estimates and dry runs peek at a few items
        if self.random_access is None:
            raise DataError("this shard stream has no random access (remote shards); it can only be streamed")
        return self.random_access[i]

    # -------------------------------------------------------------- positions
    def slot_shards(self, slot: int, epoch: int) -> list[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        order = torch.randperm(len(self.counts), generator=generator).tolist()
        return order[slot :: self.world_size * self.workers]

    def slot_samples(self, slot: int, start: int) -> Iterator[tuple[int, str, dict[str, bytes], str]]:
        """``(global id, key, raw fields, shard url)`` of slot ``slot`` from its sample position ``start`` on."""
        epoch, position = 0, start
        while True:
            mine = self.slot_shards(slot, epoch)
            total = sum(self.counts[s] for s in mine)
            if position >= total:
                position -= total
                epoch += 1
                continue
            for shard_no in mine:
                if position >= self.counts[shard_no]:
                    position -= self.counts[shard_no]
                    continue
                shard = self.shards.shards[shard_no]
                rows = ((self.starts[shard_no] + row, key, raw, shard.url)
                        for row, (key, raw) in enumerate(iter_shard(shard, format=self.shards.format)))
                rng = random.Random(f"{self.seed}/{epoch}/{shard_no}")
                for emitted, item in enumerate(shuffled(rows, size=self.shuffle_buffer, rng=rng)):
                    if emitted >= position:
                        yield item
                position = 0
            epoch += 1

    def slot_batches(self, slot: int, first: int) -> Iterator[dict[str, Any]]:
        """Batches ``first, first + 1, …`` of one slot, decoded and collated."""
        samples = self.slot_samples(slot, first * self.batch_size)
        batch_no = first
        while True:
            kept, ids = [], []
            for _ in range(self.batch_size):
                gid, key, raw, url = next(samples)
                sample = self.decoder.decode(key, raw, shard=url)
                if sample is not None:
                    kept.append(sample)
                    ids.append(gid)
            if not kept:
                raise DataError(f"slot {slot} batch {batch_no}: every sample was skipped (data.on_error: skip); "
                                f"the shards are damaged")
            batch = self.decoder.collate(kept, ids)
            batch["skipped"] = torch.tensor(self.batch_size - len(kept))
            yield batch
            batch_no += 1

    def positioned_batches(self) -> Iterator[dict[str, Any]]:
        """This reader's batches: in DataLoader worker ``w``, slot ``(start_batch + w) mod W`` (module docstring)."""
        info = get_worker_info()
        worker = info.id if info is not None else 0
        local = (self.start_batch + worker) % self.workers
        first = (self.start_batch + worker) // self.workers
        return self.slot_batches(self.rank * self.workers + local, first)

    # -------------------------------------------------------------- loader
    def positioned(self, *, batch_size: int, seed: int, start_batch: int, num_workers: int, rank: int,
                   world_size: int) -> Positioned:
        slots = world_size * max(num_workers, 1)
        if len(self.counts) < slots:
            raise DataError(f"{len(self.counts)} shard(s) cannot give each of {world_size} rank(s) × "
                            f"{max(num_workers, 1)} worker(s) its own shard; write at least {slots} shards "
                            f"(omnissl shard --shard-size) or use fewer workers")
        stream = copy.copy(self)
        stream.batch_size, stream.seed, stream.start_batch = batch_size, seed, start_batch
        stream.rank, stream.world_size, stream.workers = rank, world_size, max(num_workers, 1)
        stream.decoder = copy.copy(self.decoder)  # its skip counter is per reader
        return Positioned(stream)

    def loader(self, *, batch_size: int, seed: int, start_batch: int, num_workers: int, rank: int = 0,
               world_size: int = 1, pin_memory: bool = False) -> DataLoader[Any]:
        stream = self.positioned(batch_size=batch_size, seed=seed, start_batch=start_batch,
                                 num_workers=num_workers, rank=rank, world_size=world_size)
        # A private generator: creating the iterator must not draw from the global RNG, which the checkpoint
        # restores for the augmentations (exact resume); the stream itself draws no random numbers from it.
        generator = torch.Generator().manual_seed(seed + start_batch)
        return DataLoader(stream, batch_size=None, collate_fn=_as_is, num_workers=num_workers,
                          pin_memory=pin_memory, persistent_workers=num_workers > 0, generator=generator,
                          worker_init_fn=partial(worker_init, os.getpid()))


class Positioned(IterableDataset[dict[str, Any]]):
    """A positioned stream as DataLoader sees it: iterable, one collated batch per item."""

    def __init__(self, stream: ShardStream) -> None:
        self.stream = stream

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self.stream.positioned_batches()


def _as_is(batch: Any) -> Any:
    return batch
