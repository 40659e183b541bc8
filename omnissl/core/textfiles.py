"""Reading a data file as text: UTF-8 (a BOM is dropped), or a ``DataError`` naming the file and the line."""

from __future__ import annotations

from pathlib import Path

from omnissl.core.errors import DataError


def decode_utf8(raw: bytes, *, path: Path | str, hint: str = "") -> str:
    """``raw`` decoded as UTF-8 with an optional BOM removed (Excel's "CSV UTF-8" writes one, and it is not part of
    the first column's name). Bad bytes raise :class:`DataError` with the file, the 1-based line and the byte."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise DataError(f"{path}: line {line}: bytes are not valid UTF-8 ({error.reason}, byte 0x{raw[error.start]:02x} "
                        f"at offset {error.start}){'; ' + hint if hint else ''}") from None


def read_utf8(path: Path, *, hint: str = "") -> str:
    """The text of ``path`` (see :func:`decode_utf8`)."""
    return decode_utf8(path.read_bytes(), path=path, hint=hint)
