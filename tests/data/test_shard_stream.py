"""Streams from shards: batch k is a pure function of the seed (a resumed loader at any k, with or without workers,
gives the uninterrupted batches), every sample is read once per epoch, disjointly across (rank, worker) slots —
also with 2 gloo ranks × 2 DataLoader workers — and the shuffle buffer is seeded."""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from shardkit import mnist_shards, shard_bundle

from omnissl.core.errors import DataError
from omnissl.data.tensors import training_loader

pytestmark = pytest.mark.usefixtures("one_thread")
B = 8  # 160 samples in 8 shards of 20: 4 slots × 2 shards × 20 = 5 batches per slot per epoch


@pytest.fixture(scope="module")
def shards(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return mnist_shards(data_root, tmp_path_factory.mktemp("stream"), train=160, test=20, shard_size=20,
                        captions=False)


def _bundle(root: Path, **params: Any) -> Any:
    return shard_bundle(root, fields={"image": "png"}, decode={"image": {"image_size": 28}}, shuffle_buffer=7,
                        **params)


def _ids(bundle: Any, *, count: int, start: int = 0, workers: int = 0, rank: int = 0, world: int = 1,
         seed: int = 0) -> list[list[int]]:
    loader = training_loader(bundle.train, bundle, batch_size=B, seed=seed, start_batch=start, num_workers=workers,
                             rank=rank, world_size=world)
    batches = iter(loader)
    return [next(batches)["index"].tolist() for _ in range(count)]


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_any_batch_sees_the_uninterrupted_batches(shards: Path, workers: int) -> None:
    bundle = _bundle(shards)
    full = _ids(bundle, count=14, workers=workers)  # 14 > one epoch of the slot(s): crosses an epoch boundary
    for start in (1, 3, 6, 11):
        assert _ids(bundle, count=3, start=start, workers=workers) == full[start:start + 3], start


def test_pixels_of_a_resumed_batch_are_identical(shards: Path) -> None:
    bundle = _bundle(shards)
    one = iter(training_loader(bundle.train, bundle, batch_size=B, seed=0, start_batch=0, num_workers=0))
    first = [next(one) for _ in range(4)][3]
    again = next(iter(training_loader(bundle.train, bundle, batch_size=B, seed=0, start_batch=3, num_workers=0)))
    assert torch.equal(first["x"], again["x"]) and torch.equal(first["y"], again["y"])


def test_each_slot_reads_its_own_shards_and_an_epoch_covers_every_sample_once(shards: Path) -> None:
    bundle = _bundle(shards)
    seen = [i for rank in (0, 1) for batch in _ids(bundle, count=10, workers=2, rank=rank, world=2) for i in batch]
    assert sorted(seen) == list(range(160))  # 2 ranks × 10 batches × 8 = one epoch, each sample once
    shard_of = {rank: {i // 20 for b in _ids(bundle, count=10, workers=2, rank=rank, world=2) for i in b}
                for rank in (0, 1)}
    assert not shard_of[0] & shard_of[1]


def test_the_shuffle_buffer_is_seeded(shards: Path) -> None:
    bundle = _bundle(shards)
    assert _ids(bundle, count=5) == _ids(bundle, count=5)
    assert _ids(bundle, count=5, seed=1) != _ids(bundle, count=5)
    in_order = [i for b in _ids(_bundle(shards), count=5) for i in b]
    assert in_order != sorted(in_order)  # shuffled, not file order


def test_too_few_shards_for_the_slots_is_an_error(shards: Path) -> None:
    bundle = _bundle(shards)
    with pytest.raises(DataError, match="8 shard\\(s\\) cannot give each of 4 rank\\(s\\) × 3 worker\\(s\\)"):
        training_loader(bundle.train, bundle, batch_size=B, seed=0, start_batch=0, num_workers=3, rank=0,
                        world_size=4)


def _rank(rank: int, world: int, port: int, root: str, out: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world, timeout=datetime.timedelta(seconds=60))
    try:
        bundle = _bundle(Path(root))
        ids = torch.tensor(_ids(bundle, count=10, workers=2, rank=dist.get_rank(), world=dist.get_world_size()))
        gathered = [torch.zeros_like(ids) for _ in range(world)]
        dist.all_gather(gathered, ids)
        if rank == 0:
            torch.save(torch.stack(gathered), Path(out) / "ids.pt")
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_with_two_workers_each_read_disjoint_shards(shards: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_rank, args=(2, port, str(shards), str(tmp_path)), nprocs=2, join=True)
    ids = torch.load(tmp_path / "ids.pt", weights_only=True)  # (rank, batch, row)
    assert sorted(ids.flatten().tolist()) == list(range(160))
    assert not {i // 20 for i in ids[0].flatten().tolist()} & {i // 20 for i in ids[1].flatten().tolist()}
    bundle = _bundle(shards)
    assert ids[1].tolist() == _ids(bundle, count=10, workers=2, rank=1, world=2)  # same as in one process
