"""Bad shard data: an undecodable member, an empty clip, a missing field are a DataError naming shard, key and field;
under ``on_error: skip`` they are left out, counted and logged — and a skip keeps every later batch in place."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
from shardkit import mnist_samples, shard_bundle

from omnissl.core.errors import DataError
from omnissl.data.shard_writer import write_shards
from omnissl.data.tensors import evaluation_loader, training_loader

pytestmark = pytest.mark.usefixtures("one_thread")


@contextmanager
def logged_messages(logger: str) -> Iterator[list[str]]:
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger(logger).addHandler(handler)
    try:
        yield messages
    finally:
        logging.getLogger(logger).removeHandler(handler)


def _write(tmp_path: Path, samples: list) -> None:
    write_shards(iter(samples), out=tmp_path / "train", shard_size=4)


def _first_batches(bundle: Any, count: int = 1, start: int = 0) -> list[Any]:
    batches = iter(training_loader(bundle.train, bundle, batch_size=4, seed=0, start_batch=start, num_workers=0))
    return [next(batches) for _ in range(count)]


@pytest.fixture
def broken(data_root: Path, tmp_path: Path) -> Path:
    samples = mnist_samples(data_root, 8, captions=True)
    samples[2][1]["png"] = b"\x89PNG but not really"
    del samples[5][1]["txt"]
    _write(tmp_path, samples)
    return tmp_path


def test_an_undecodable_member_names_shard_key_and_field(broken: Path) -> None:
    bundle = shard_bundle(broken, test_shards=None, fields={"image": "png", "text": "txt"}, shuffle_buffer=1)
    with pytest.raises(DataError, match=r"shard .*shard-000000\.tar: key 'mnist000002' field 'image' \(\.png\): "
                                        r"cannot decode image"):
        _first_batches(bundle, count=2)


def test_a_missing_field_names_shard_key_and_field(broken: Path) -> None:
    bundle = shard_bundle(broken, test_shards=None, fields={"text": "txt"}, shuffle_buffer=1)
    with pytest.raises(DataError, match=r"shard-000001\.tar: key 'mnist000005' has no field 'text' \(member \.txt"):
        _first_batches(bundle, count=2)


def test_skip_counts_and_logs_each_bad_sample_and_keeps_later_batches_in_place(broken: Path) -> None:
    bundle = shard_bundle(broken, test_shards=None, fields={"image": "png", "text": "txt"}, shuffle_buffer=1,
                          on_error="skip")
    with logged_messages("omnissl.data") as messages:
        batches = _first_batches(bundle, count=4)
    sizes = [len(b["index"]) for b in batches]
    skipped = [int(b["skipped"]) for b in batches]
    assert sum(skipped) == 4 and sizes == [4 - s for s in skipped]  # two bad samples, twice each (2 epochs)
    assert len([m for m in messages if "skipped" in m]) == 4
    assert "mnist000002" in messages[0] and "1 skipped so far" in messages[0]
    seen = {i for b in batches for i in b["index"].tolist()}
    assert seen == set(range(8)) - {2, 5}
    resumed = _first_batches(bundle, count=1, start=3)[0]  # resume stays exact across the skips
    assert resumed["index"].tolist() == batches[3]["index"].tolist()


def test_an_empty_clip_is_named(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    soundfile.write(buffer, np.zeros(400, dtype=np.float32), 8000, format="FLAC")
    empty = io.BytesIO()
    soundfile.write(empty, np.zeros(0, dtype=np.float32), 8000, format="WAV")
    samples = [(f"c{i}", {"wav" if i == 1 else "flac": (empty if i == 1 else buffer).getvalue(), "cls": b"0"})
               for i in range(4)]
    samples[1] = ("c1", {"flac": empty.getvalue(), "cls": b"0"})
    _write(tmp_path, samples)
    bundle = shard_bundle(tmp_path, test_shards=None, fields={"audio": "flac"}, shuffle_buffer=1,
                          decode={"audio": {"sample_rate": 8000}})
    with pytest.raises(DataError, match=r"key 'c1' field 'audio' \(\.flac\): (empty clip|cannot decode audio)"):
        _first_batches(bundle)


def test_a_truncated_shard_is_named(data_root: Path, tmp_path: Path) -> None:
    _write(tmp_path, mnist_samples(data_root, 8, captions=False))
    shard = tmp_path / "train" / "shard-000001.tar"
    shard.write_bytes(shard.read_bytes()[:700])
    with pytest.raises(DataError, match="shard-000001.tar"):
        bundle = shard_bundle(tmp_path, test_shards=None, fields={"image": "png"})
        list(evaluation_loader(bundle.train, bundle, batch_size=4))


def test_remote_shards_need_the_users_opt_in(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="--allow-outside-data-root"):
        shard_bundle(tmp_path, shards="https://example.invalid/train-{000..009}.tar", test_shards=None,
                     fields={"image": "jpg"})
    with pytest.raises(DataError, match="leaves the data root"):
        shard_bundle(tmp_path, shards="../elsewhere/train.tar", test_shards=None, fields={"image": "jpg"})
