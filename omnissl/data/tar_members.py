"""Members of a local, uncompressed tar file in order, read straight from the 512-byte headers.

``tarfile`` builds a ``TarInfo`` per member and parses every header field in Python; for shards of small members
(a 32-px PNG is ~2 KB) that bookkeeping cost about as much CPU as decoding the image (docs/data-at-scale-throughput.md).
This reader takes only what a shard needs: the member name (ustar prefix, GNU long names and pax ``path``), its size
and type. Every header's checksum is verified, so damage is still an error; anything this reader does not handle
(sparse files, a pax ``size`` override) raises :class:`UnsupportedTar` and the caller falls back to ``tarfile``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")  # '7' is a contiguous file: same layout as a regular one
_SKIPPED = (b"1", b"2", b"3", b"4", b"5", b"6", b"g")  # links, devices, directories, FIFOs, global pax


class UnsupportedTar(Exception):
    """A valid tar feature this reader leaves to ``tarfile``."""


class DamagedTar(Exception):
    """A header with a bad checksum, a field that is not a number, or a member cut short."""


def _number(field: bytes, *, what: str) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256 for sizes of 8 GiB and more
        value = int.from_bytes(field[1:], "big")
        return -value if field[:1] == b"\xff" else value
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise DamagedTar(f"{what} field {field!r} is not an octal number") from None


def _checksum_ok(header: bytes) -> bool:
    stored = _number(header[148:156], what="checksum")
    unsigned = sum(header[:148]) + 256 + sum(header[156:])  # the checksum field counts as eight spaces
    return stored == unsigned


def _pax_records(data: bytes) -> dict[str, str]:
    records, at = {}, 0
    while at < len(data):
        space = data.index(b" ", at)
        length = int(data[at:space])
        key, _, value = data[space + 1: at + length - 1].partition(b"=")
        records[key.decode("utf-8")] = value.decode("utf-8", "surrogateescape")
        at += length
    return records


def _read_exact(handle: BinaryIO, size: int, *, what: str) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise DamagedTar(f"{what}: {len(data)} of {size} bytes before the end of the file")
    return data


def iter_tar_members(handle: BinaryIO) -> Iterator[tuple[str, bytes]]:
    """``(name, data)`` of every regular member, in file order; stops at the end-of-archive zero block."""
    long_name: str | None = None
    while True:
        header = handle.read(BLOCK)
        if not header or header == bytes(BLOCK):
            return  # the end marker (two zero blocks; one, or none, as some writers leave it, also ends the archive)
        if len(header) != BLOCK:
            raise DamagedTar(f"a {len(header)}-byte header at the end of the file")
        if not _checksum_ok(header):
            raise DamagedTar(f"header checksum mismatch at byte {handle.tell() - BLOCK}")
        size = _number(header[124:136], what="size")
        kind = header[156:157]
        padded = -(-size // BLOCK) * BLOCK
        if kind in (b"L", b"x"):
            data = _read_exact(handle, padded, what="long-name record")[:size]
            if kind == b"L":
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            else:
                records = _pax_records(data)
                if set(records) - {"path", "mtime", "atime", "ctime", "uid", "gid", "uname", "gname"}:
                    raise UnsupportedTar(f"pax records {sorted(records)}")
                long_name = records.get("path", long_name)
            continue
        if kind in _SKIPPED:
            handle.seek(padded, 1)
            long_name = None
            continue
        if kind not in _REGULAR:
            raise UnsupportedTar(f"member type {kind!r}")
        if long_name is not None:
            name = long_name
        else:
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if header[257:262] == b"ustar" and header[345:346] != b"\0":
                name = header[345:500].split(b"\0", 1)[0].decode("utf-8", "surrogateescape") + "/" + name
        long_name = None
        data = _read_exact(handle, size, what=f"member '{name}'")
        if padded != size:
            handle.seek(padded - size, 1)
        yield name, data
