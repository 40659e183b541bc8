"""Property tests of the shard readers (``webdataset`` tar shards, ``parquet_shards``): random bytes, truncations and
empty files either load faithfully (every sample written comes back, unchanged) or raise ``DataError`` naming the
shard; never another exception, never a silently shorter shard."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from omnissl.core.errors import DataError
from omnissl.data.shard_writer import write_shards
from omnissl.data.shardlist import resolve_shards
from omnissl.data.shardread import ShardIndex, iter_shard

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.usefixtures("one_thread")
SAMPLES = [(f"k{i}", {"txt": f"caption {i}".encode(), "cls": str(i).encode()}) for i in range(3)]


def _valid(format: str) -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        write_shards(iter(SAMPLES), out=Path(folder) / "s", shard_size=10, format=format)
        name = "shard-000000.parquet" if format == "parquet" else "shard-000000.tar"
        return (Path(folder) / "s" / name).read_bytes()


VALID = {"webdataset": _valid("webdataset"), "parquet": _valid("parquet")}


@st.composite
def damaged(draw: st.DrawFn, valid: bytes) -> bytes:
    # No byte flips: tar members carry no checksum, so changed member bytes are undetectable by the reader
    # (the manifest's sha256 per shard is what catches them).
    kind = draw(st.sampled_from(("random", "truncate", "empty")))
    if kind == "random":
        return draw(st.binary(max_size=600))
    if kind == "truncate":
        return valid[: draw(st.integers(0, len(valid) - 1))]
    return b""


def _read(data: bytes, format: str) -> object:
    suffix = ".parquet" if format == "parquet" else ".tar"
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"fuzz{suffix}"
        path.write_bytes(data)
        try:
            shards = resolve_shards(str(path), data_root=Path(folder), key="data.shards")
            streamed = [s for shard in shards.shards for s in iter_shard(shard, format=shards.format)]
            index = ShardIndex(shards)
            indexed = [index[i] for i in range(len(index))]
        except DataError as error:
            assert str(path) in str(error), error
            return error
    for got in (streamed, indexed):
        keys = [key for key, _ in got]
        fields = [{ext: raw[ext] for ext in ("txt", "cls")} for _, raw in got]
        assert keys == [k for k, _ in SAMPLES] and fields == [f for _, f in SAMPLES]
    return got


@SETTINGS
@given(data=damaged(VALID["webdataset"]))
def test_tar_shards_load_faithfully_or_name_the_shard(data: bytes) -> None:
    _read(data, "webdataset")


@SETTINGS
@given(data=damaged(VALID["parquet"]))
def test_parquet_shards_load_faithfully_or_name_the_shard(data: bytes) -> None:
    _read(data, "parquet")


def test_the_valid_shards_load() -> None:
    assert not isinstance(_read(VALID["webdataset"], "webdataset"), DataError)
    assert not isinstance(_read(VALID["parquet"], "parquet"), DataError)
