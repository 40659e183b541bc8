"""Large ``.txt`` / ``.jsonl`` text files read per sample: an index of byte offsets and labels, each row read and
tokenised in the DataLoader workers (issue 19).

The index pass reads the file once, as a stream, and checks every row as the in-memory reader does (UTF-8, no empty
line, JSON objects with a non-empty ``text_column`` string and a label), keeping only each row's byte offset and
label: memory is one int64 and one label per row, never the text. Rows are then re-read by offset and tokenised on
fetch. The tokeniser is fitted on the first ``tokenizer_examples`` training rows (or loaded: a directory or
``package:NAME``), and the TF-IDF raw-input baseline's IDF comes from those same rows. CSV/TSV rows may span lines
(quoted newlines), so they have no cheap line index: convert them to JSONL or to Parquet shards.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from omnissl.core.errors import DataError

# Below this many bytes of training file the in-memory reader is used: its one pass over the text beats B file
# reads per batch. Provisional (not yet measured against the lazy path on a quiet machine).
IN_MEMORY_FILE_BYTES = 64 * 2**20
LAZY_FORMATS = ("txt", "jsonl")


def _row_text(line: bytes, *, fmt: str, text_column: str, where: str) -> tuple[str, Any]:
    """One raw line → ``(text, record)``; ``record`` is the JSON object (``None`` for ``.txt``)."""
    try:
        decoded = line.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{where}: not UTF-8 (byte {error.start} of the line); save the file as UTF-8") from None
    decoded = decoded.rstrip("\n").rstrip("\r")
    if not decoded.strip():
        raise DataError(f"{where}: empty line (remove it)")
    if fmt == "txt":
        return decoded, None
    try:
        record = json.loads(decoded)
    except json.JSONDecodeError as error:
        raise DataError(f"{where}: not valid JSON ({error.msg})") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply") from None
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    if text_column not in record:
        raise DataError(f"{where}: missing key '{text_column}'")
    text = record[text_column]
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: column '{text_column}' is empty or not text ({type(text).__name__})")
    return text, record


def index_file(path: Path, *, fmt: str, text_column: str,
               label_column: str | None) -> tuple[np.ndarray, list[Any] | None]:
    """Byte offset of every row ``(N,)`` int64 and the raw labels (``None`` without ``label_column``)."""
    if fmt not in LAZY_FORMATS:
        raise DataError(f"{path}: data.in_memory: false reads .txt or .jsonl files row by row; a {fmt.upper()} row "
                        f"may span lines. Convert it to JSONL, or to Parquet shards (parquet_shards)")
    offsets: list[int] = []
    labels: list[Any] | None = [] if label_column is not None and fmt == "jsonl" else None
    with path.open("rb") as handle:
        position = 0
        for row, line in enumerate(handle, start=1):
            start = position
            position += len(line)
            if row == 1 and line.startswith(b"\xef\xbb\xbf"):  # a BOM is not part of the first row
                start, line = start + 3, line[3:]
            _, record = _row_text(line, fmt=fmt, text_column=text_column, where=f"{path}: line {row}")
            if labels is not None:
                value = record.get(label_column)
                if value is None or (isinstance(value, str) and not value.strip()) or value != value:  # noqa: PLR0124 (NaN)
                    raise DataError(f"{path}: line {row}: missing label in column '{label_column}'")
                labels.append(value)
            offsets.append(start)
    if not offsets:
        raise DataError(f"{path}: no rows (empty file)")
    if fmt == "txt" and label_column is not None:
        labels = None  # a .txt file has no label column, as in the in-memory reader
    return np.asarray(offsets, dtype=np.int64), labels


class LazyTextDataset(Dataset[dict[str, Any]]):
    """Rows of ``path`` at byte ``offsets`` ``(N,)`` with int64 ``labels`` ``(N,)``; each fetched row is read and
    tokenised (truncated to ``max_length``, specials included) by ``tokenizer`` (a ``TokenizerInfo``)."""

    def __init__(self, path: Path, offsets: np.ndarray, labels: Sequence[int], *, fmt: str, text_column: str,
                 tokenizer: Any, max_length: int) -> None:
        if len(offsets) != len(labels):
            raise DataError(f"{path}: {len(offsets)} rows but {len(labels)} labels")
        self.path, self.offsets = Path(path), np.asarray(offsets, dtype=np.int64)
        self.labels = torch.as_tensor(list(labels), dtype=torch.long)
        self.fmt, self.text_column = fmt, text_column
        self.tokenizer, self.max_length = tokenizer, max_length
        self._handle: Any = None
        self._pid = -1

    def __len__(self) -> int:
        return len(self.offsets)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handle": None, "_pid": -1}  # an open file does not cross into a worker

    def text(self, index: int) -> str:
        """Row ``index``'s text, read from the file (one seek and one line)."""
        if self._handle is None or self._pid != os.getpid():  # a forked worker must not share the parent's offset
            self._handle, self._pid = self.path.open("rb"), os.getpid()
        self._handle.seek(int(self.offsets[index]))
        line = self._handle.readline()
        return _row_text(line, fmt=self.fmt, text_column=self.text_column, where=f"{self.path}: row {index + 1}")[0]

    @property
    def texts(self) -> list[str]:
        """Every row's text (read on demand: the TF-IDF baseline needs them all; training never asks)."""
        return [self.text(i) for i in range(len(self))]

    def encode(self, index: int) -> torch.Tensor:
        ids = self.tokenizer.encode([self.text(index)], max_length=self.max_length)[0]
        if len(ids) == 0:
            raise DataError(f"{self.path}: row {index + 1} tokenises to an empty sequence")
        return torch.as_tensor(ids, dtype=torch.long)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"input_ids": self.encode(index), "y": self.labels[index], "index": index}
