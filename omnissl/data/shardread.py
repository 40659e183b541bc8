"""Reading shard samples as ``(key, {field: bytes})``: in order (streaming, any source webdataset can open) or by
index (local files: a header index of each tar, Parquet row groups).

Damage is a :class:`DataError` naming the shard (and key): a truncated tar, a member that cannot be read, a
Parquet file pyarrow refuses. Hidden members (``__*__``, webdataset's meta convention) are not samples.

A local shard whose manifest entry has a ``sha256`` is hashed before its first read in each process (a DataLoader
worker hashes each shard it reads once, not once per epoch): a mismatch is a :class:`DataError` with the path and
both digests, raised outside any sample, so ``on_error: skip`` never hides it; ``data.verify: false`` turns the
check off. Hashing before reading, not while, because a streaming hash would only tell at the end of the shard,
after its samples were trained on, and pyarrow reads Parquet through its own handles. It costs one extra
sequential read of the shard (see docs/data-at-scale.md for the measured cost).
"""

from __future__ import annotations

import hashlib
import os
import re
import tarfile
from collections.abc import Iterator
from typing import Any

import numpy as np

from omnissl.core.errors import DataError
from omnissl.data.shardlist import Shard, ShardSet, split_key
from omnissl.data.tar_members import DamagedTar, UnsupportedTar, iter_tar_members

Sample = tuple[str, dict[str, bytes]]


_VERIFIED: set[tuple[str, str, int, int]] = set()  # (path, digest, size, mtime) checked by this process


def file_sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_shard(shard: Shard) -> None:
    """Check a local shard against its manifest sha256, once per process (and again if the file changes)."""
    if shard.sha256 is None or shard.local is None:
        return  # no manifest digest (a bare folder or pattern), or a remote shard: nothing to check against
    try:
        stat = os.stat(shard.local)
    except OSError as error:
        raise DataError(f"{shard.url}: cannot read ({error})") from error
    seen = (str(shard.local), shard.sha256, stat.st_size, stat.st_mtime_ns)
    if seen in _VERIFIED:
        return
    actual = file_sha256(shard.local)
    if actual != shard.sha256:
        raise DataError(f"{shard.url}: sha256 mismatch: the manifest says {shard.sha256}, the file has {actual} "
                        f"(changed or damaged since it was written; data.verify: false reads it anyway)")
    _VERIFIED.add(seen)


def _value_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if value is None:
        return b""
    return str(value).encode("utf-8")


_META = re.compile(r"__[^/]*__($|/)")  # webdataset's meta members (``__key__`` …): not sample fields


def _wds_hides(fname: str) -> bool:
    return "/" not in fname and fname.startswith("__") and fname.endswith("__")


def _wds_members(url: str, *, skip: int = 0) -> Iterator[tuple[str, bytes]]:
    from webdataset import gopen
    from webdataset.tariterators import tar_file_iterator

    stream = gopen(url, "rb")
    try:
        for member in tar_file_iterator(stream, skip_meta=None):
            if skip:
                skip -= 1
                continue
            yield member["fname"], member["data"]
    finally:
        stream.close()


def _members(shard: Shard) -> Iterator[tuple[str, bytes]]:
    """Regular members of a tar shard in order: local files through the header reader (5x less CPU per member
    than ``tarfile``), URLs and ``pipe:`` specs, and tars using features it leaves alone, through webdataset."""
    if shard.local is None:
        yield from _wds_members(shard.url)
        return
    done = 0
    try:
        with open(shard.local, "rb") as handle:
            for name, data in iter_tar_members(handle):
                yield name, data
                done += not _wds_hides(name)  # members webdataset's iterator drops are not in its count
    except DamagedTar as error:
        raise DataError(f"{shard.url}: damaged tar shard ({error})") from error
    except UnsupportedTar:
        yield from _wds_members(shard.url, skip=done)  # same member order, so carry on where the reader stopped


def iter_tar(shard: Shard) -> Iterator[Sample]:
    """Samples of one tar shard in file order (members of one key must be adjacent, as webdataset writes them)."""
    verify_shard(shard)
    key, fields, count = None, {}, 0
    try:
        for fname, data in _members(shard):
            if _wds_hides(fname) or _META.match(fname):
                continue
            name, ext = split_key(fname)
            if name != key and key is not None:
                yield key, fields
                count += 1
                fields = {}
            if name in (key,) and ext in fields:
                raise DataError(f"{shard.url}: key '{name}' has two '{ext}' members")
            key = name
            fields[ext] = data
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{shard.url}: damaged tar shard after key '{key}' ({type(error).__name__}: {error})") \
            from error
    if key is not None:
        yield key, fields
        count += 1
    if count != shard.samples:  # a shard cut at a member boundary reads as a shorter valid tar
        raise DataError(f"{shard.url}: holds {count} samples, the shard list says {shard.samples} (truncated?)")


def iter_parquet(shard: Shard) -> Iterator[Sample]:
    """Rows of one Parquet shard; the key is the ``__key__`` column when present, else the row number."""
    import pyarrow.parquet as pq

    verify_shard(shard)
    try:
        table = pq.ParquetFile(shard.url)
        for group in range(table.num_row_groups):
            rows = table.read_row_group(group).to_pylist()
            for row in rows:
                key = str(row.pop("__key__", None) or "")
                yield key, {column: _value_bytes(value) for column, value in row.items()}
    except Exception as error:
        raise DataError(f"{shard.url}: damaged Parquet shard ({type(error).__name__}: {error})") from error


def iter_shard(shard: Shard, *, format: str) -> Iterator[Sample]:
    return iter_parquet(shard) if format == "parquet" else iter_tar(shard)


class ShardIndex:
    """Random access to the samples of local shards: sample ``i`` (global id, shards in order) → ``(key, fields)``.

    Tar: the first read from a shard records each member's data offset and size from its headers (one pass, member
    data skipped); a read is then one seek. Shards are indexed on first use, so a few peeks (cost estimates) at a
    million-sample training set cost one shard's index, not a million entries. Parquet: the row group holding the
    row is read and the last one kept. File handles open lazily per process, so the index pickles into workers.
    """

    def __init__(self, shards: ShardSet) -> None:
        missing = [s.url for s in shards.shards if s.local is None]
        if missing:
            raise DataError(f"{missing[0]}: random access (evaluation splits, in-order reads) needs local shards")
        self.shards, self.format = shards, shards.format
        self.starts = np.asarray(shards.offsets() + [shards.samples], dtype=np.int64)
        self._handles: dict[int, Any] = {}
        self._tables: dict[int, tuple[list[str], list[dict[str, tuple[int, int]]]]] = {}
        self._group: tuple[int, int, list[dict[str, Any]]] | None = None

    def _table(self, shard_no: int) -> tuple[list[str], list[dict[str, tuple[int, int]]]]:
        table = self._tables.get(shard_no)
        if table is not None:
            return table
        shard = self.shards.shards[shard_no]
        verify_shard(shard)
        keys: list[str] = []
        members: list[dict[str, tuple[int, int]]] = []
        try:
            with tarfile.open(shard.local, mode="r:") as tar:  # type: ignore[arg-type]
                for member in tar:
                    if not member.isfile() or member.name.rpartition("/")[2].startswith("__"):
                        continue
                    key, ext = split_key(member.name)
                    if not keys or keys[-1] != key:
                        keys.append(key)
                        members.append({})
                    members[-1][ext] = (member.offset_data, member.size)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataError(f"{shard.url}: not an uncompressed, readable tar shard for random access "
                            f"({type(error).__name__}: {error})") from error
        if len(keys) != shard.samples:
            raise DataError(f"{shard.url}: holds {len(keys)} samples but the shard list says {shard.samples}")
        self._tables[shard_no] = (keys, members)
        return keys, members

    def __len__(self) -> int:
        return int(self.starts[-1])

    def locate(self, index: int) -> tuple[int, int]:
        """Global id → (shard number, row within the shard)."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} of {len(self)}")
        shard = int(np.searchsorted(self.starts, index, side="right")) - 1
        return shard, index - int(self.starts[shard])

    def __getitem__(self, index: int) -> Sample:
        shard_no, row = self.locate(index)
        shard = self.shards.shards[shard_no]
        if self.format == "parquet":
            return self._parquet_row(shard_no, row)
        keys, members = self._table(shard_no)
        handle = self._handles.get(shard_no)
        if handle is None:
            handle = self._handles[shard_no] = open(shard.local, "rb")  # type: ignore[arg-type]  # noqa: SIM115
        fields = {}
        for ext, (offset, size) in members[row].items():
            handle.seek(offset)
            data = handle.read(size)
            if len(data) != size:
                raise DataError(f"{shard.url}: key '{keys[row]}' field '{ext}' is truncated")
            fields[ext] = data
        return keys[row], fields

    def _parquet_row(self, shard_no: int, row: int) -> Sample:
        import pyarrow.parquet as pq

        shard = self.shards.shards[shard_no]
        cached = self._group
        if cached is None or cached[0] != shard_no or not cached[1] <= row < cached[1] + len(cached[2]):
            verify_shard(shard)
            file = pq.ParquetFile(shard.url)
            first = 0
            for group in range(file.num_row_groups):
                size = file.metadata.row_group(group).num_rows
                if row < first + size:
                    cached = (shard_no, first, file.read_row_group(group).to_pylist())
                    break
                first += size
            self._group = cached
        assert cached is not None
        values = dict(cached[2][row - cached[1]])
        key = str(values.pop("__key__", None) or f"{shard_no}:{row}")
        return key, {column: _value_bytes(value) for column, value in values.items()}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_handles"], state["_group"] = {}, None  # open files do not cross process boundaries
        return state
