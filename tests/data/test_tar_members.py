"""The header reader agrees with ``tarfile`` member for member, reports damage, and hands unusual tars back."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from omnissl.core.errors import DataError
from omnissl.data.shardlist import Shard
from omnissl.data.shardread import iter_tar
from omnissl.data.tar_members import DamagedTar, UnsupportedTar, iter_tar_members


def write_tar(path: Path, members: list[tuple[str, bytes]], *, format: int) -> Path:
    with tarfile.open(path, mode="w", format=format) as tar:
        tar.addfile(_dir_info(), None)  # a non-file member the reader must step over
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _dir_info() -> tarfile.TarInfo:
    info = tarfile.TarInfo("folder")
    info.type = tarfile.DIRTYPE
    return info


def with_tarfile(path: Path) -> list[tuple[str, bytes]]:
    with tarfile.open(path) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar if m.isreg()]  # type: ignore[union-attr]


MEMBERS = [("s0.png", b"\x89PNG" + bytes(range(256)) * 3), ("s0.cls", b"3"), ("s1.png", b""), ("s1.cls", b"7"),
           ("sub/dir/s2.txt", "ünïcode caption".encode()), ("x" * 120 + ".txt", b"a long name"),
           ("p" * 90 + "/" + "q" * 90 + ".jpg", b"prefix split")]


@pytest.mark.parametrize("format", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT],
                         ids=["ustar", "gnu", "pax"])
def test_members_match_tarfile(tmp_path: Path, format: int) -> None:
    members = MEMBERS if format != tarfile.USTAR_FORMAT else [m for m in MEMBERS if len(m[0]) < 100]
    path = write_tar(tmp_path / "a.tar", members, format=format)
    with open(path, "rb") as handle:
        found = list(iter_tar_members(handle))
    assert found == with_tarfile(path) == members


def test_bad_checksum_is_damage(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", MEMBERS[:4], format=tarfile.USTAR_FORMAT)
    raw = bytearray(path.read_bytes())
    raw[512] ^= 0x01  # the first file member's name (its header follows the directory's)
    path.write_bytes(bytes(raw))
    with open(path, "rb") as handle, pytest.raises(DamagedTar, match="checksum"):
        list(iter_tar_members(handle))


def test_member_cut_short_is_damage(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", MEMBERS[:2], format=tarfile.USTAR_FORMAT)
    path.write_bytes(path.read_bytes()[: 512 * 2 + 100])  # dir header, member header, 100 of 772 data bytes
    with open(path, "rb") as handle, pytest.raises(DamagedTar, match="s0.png"):
        list(iter_tar_members(handle))


def test_sparse_member_is_left_to_tarfile(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", MEMBERS[:2], format=tarfile.USTAR_FORMAT)
    raw = bytearray(path.read_bytes())
    header = raw[512:1024]
    header[156:157] = b"S"  # GNU sparse type; fix the checksum so only the type is unusual
    header[148:156] = b" " * 8
    header[148:156] = f"{sum(header):06o}\0 ".encode()
    raw[512:1024] = header
    path.write_bytes(bytes(raw))
    with open(path, "rb") as handle, pytest.raises(UnsupportedTar):
        list(iter_tar_members(handle))


def test_iter_tar_falls_back_mid_shard_without_repeating_samples(tmp_path: Path) -> None:
    """A pax record the reader leaves alone (a size override) after two samples: webdataset reads the rest."""
    path = tmp_path / "a.tar"
    with tarfile.open(path, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for i in range(4):
            for ext, data in (("png", bytes([i]) * 10), ("cls", str(i).encode())):
                info = tarfile.TarInfo(f"s{i}.{ext}")
                info.size = len(data)
                if i == 2 and ext == "png":
                    info.pax_headers = {"comment": "unusual"}
                tar.addfile(info, io.BytesIO(data))
    shard = Shard(url=str(path), samples=4, local=path)
    samples = list(iter_tar(shard))
    assert [key for key, _ in samples] == ["s0", "s1", "s2", "s3"]
    assert samples[2][1] == {"png": bytes([2]) * 10, "cls": b"2"}


def test_iter_tar_names_the_shard_when_damaged(tmp_path: Path) -> None:
    path = write_tar(tmp_path / "a.tar", MEMBERS[:4], format=tarfile.USTAR_FORMAT)
    raw = bytearray(path.read_bytes())
    raw[512] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"a\.tar: damaged tar shard"):
        list(iter_tar(Shard(url=str(path), samples=2, local=path)))
