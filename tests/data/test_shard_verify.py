"""sha256 verified on read (issue 19): a shard whose bytes differ from its manifest digest is a DataError naming
the shard and both digests, on every read path, not hidden by ``on_error: skip``; ``data.verify: false`` reads it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from omnissl.core.errors import DataError
from omnissl.eval.features import evaluation_loader
from tests.data.shardkit import mnist_shards, shard_bundle


def _flip_a_member_byte(shard: Path) -> tuple[str, str]:
    """Change the first sample's class digit (the tar headers and the PNG stay valid: only the digest can tell)."""
    import tarfile

    with tarfile.open(shard) as tar:
        first = next(m for m in tar if m.isfile() and m.name.endswith(".cls"))
    data = bytearray(shard.read_bytes())
    position = first.offset_data
    data[position] = ord("0") + (data[position] - ord("0") + 1) % 10
    before = hashlib.sha256(shard.read_bytes()).hexdigest()
    shard.write_bytes(bytes(data))
    return before, hashlib.sha256(bytes(data)).hexdigest()


@pytest.fixture
def damaged(data_root: Path, tmp_path: Path) -> tuple[Path, str, str]:
    mnist_shards(data_root, tmp_path, train=80, test=40, shard_size=20, captions=False)
    shard = tmp_path / "test" / "shard-000001.tar"
    expected, actual = _flip_a_member_byte(shard)
    manifest = json.loads((tmp_path / "test" / "manifest.json").read_text())
    assert manifest["shards"][1]["sha256"] == expected
    return shard, expected, actual


def test_a_changed_byte_is_named_with_both_digests(damaged: tuple[Path, str, str], tmp_path: Path) -> None:
    shard, expected, actual = damaged
    for on_error in ("raise", "skip"):  # skip is for bad samples, not for a shard that is not the one written
        bundle = shard_bundle(tmp_path, fields={"image": "png"}, on_error=on_error)
        bundle.test[0]  # shard 0 is intact
        with pytest.raises(DataError) as caught:
            list(evaluation_loader(bundle.test, bundle, batch_size=8))
        message = str(caught.value)
        assert str(shard) in message and expected in message and actual in message and "sha256" in message


def test_the_training_stream_verifies_too(damaged: tuple[Path, str, str], tmp_path: Path) -> None:
    shard, expected, _ = damaged
    with pytest.raises(DataError, match=f"{shard}: sha256 mismatch: the manifest says {expected}"):
        # the image codec's statistics read the first shards already; else the stream's worker finds it
        bundle = shard_bundle(tmp_path, fields={"image": "png"}, shards="test", test_shards=None,
                              decode={"image": {"stats_from": 1}}, examples=1)
        loader = bundle.train.loader(batch_size=4, seed=0, start_batch=0, num_workers=0)
        for _, _batch in zip(range(20), loader):  # 20 batches of 4 = every one of the 2 shards x 20 samples
            pass


def test_verify_false_reads_the_changed_shard(damaged: tuple[Path, str, str], tmp_path: Path) -> None:
    bundle = shard_bundle(tmp_path, fields={"image": "png"}, verify=False)
    batches = list(evaluation_loader(bundle.test, bundle, batch_size=8))
    assert sum(len(b["y"]) for b in batches) == 40


def test_a_shard_is_hashed_once_per_process(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from omnissl.data import shardread

    mnist_shards(data_root, tmp_path, train=40, test=40, shard_size=20, captions=False)
    calls: list[str] = []
    real = shardread.file_sha256
    monkeypatch.setattr(shardread, "file_sha256", lambda path: calls.append(str(path)) or real(path))
    monkeypatch.setattr(shardread, "_VERIFIED", set())
    bundle = shard_bundle(tmp_path, fields={"image": "png"})
    for _ in range(3):
        list(evaluation_loader(bundle.test, bundle, batch_size=8))
    assert len(calls) == len(set(calls))  # the codec's examples (train) and three passes over test: once each
    assert {str(tmp_path / "test" / f"shard-00000{i}.tar") for i in range(2)} <= set(calls)
