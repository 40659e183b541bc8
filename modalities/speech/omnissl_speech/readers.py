"""Reading ``fsdd.npz`` and manifest CSVs with every defect reported as a :class:`DataError` naming file and row.

An audit (F12, F17, F18) found a truncated ``fsdd.npz`` escaping as ``zipfile.BadZipFile``, five missing labels as
an ``IndexError``, a manifest row's extra field dropped without a word (``csv.DictReader``), a latin-1 manifest
failing with neither file nor line, and a UTF-8 BOM turning the ``path`` column into ``\\ufeffpath``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from omnissl.core.errors import DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.textfiles import read_utf8

FSDD_ARRAYS = ("audio", "offsets", "lengths", "digit", "speaker", "split", "filename", "sample_rate",
               "speaker_names")
FSDD_CLASSES = {"digit": 10, "speaker": 6}


def _read_npz(*, path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [name for name in names if name not in arrays.files]
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(map(repr, missing))}")
            return {name: np.asarray(arrays[name]) for name in names}  # read in full, so zip CRCs are checked
    except DataError:
        raise
    except Exception as error:  # BadZipFile, EOFError, zlib.error, bad CRC, pickled arrays, absurd headers …
        why = "contains Python objects (pickled arrays), which are never loaded" if "allow_pickle" in str(error) \
            else f"{type(error).__name__}: {error}"
        raise DataError(f"{path}: not a readable .npz file ({why})") from error


def _first_bad(*, path: Path, name: str, mask: np.ndarray, values: np.ndarray, names: np.ndarray,
               expected: str) -> None:
    bad = np.flatnonzero(mask)
    if bad.size:
        raise DataError(f"{path}: '{name}' of recording {names[bad[0]]} is {values[bad[0]]}, expected {expected} "
                        f"({bad.size} such recordings)")


def load_fsdd(*, path: Path, label: str) -> dict[str, np.ndarray]:
    """The arrays of ``fsdd.npz``, checked: one entry per recording everywhere, labels/splits/offsets in range."""
    arrays = _read_npz(path=path, names=FSDD_ARRAYS)
    audio, offsets = arrays["audio"], arrays["offsets"]
    if audio.ndim != 1 or audio.dtype != np.int16:
        raise DataError(f"{path}: 'audio' must be 1-D int16 PCM, got {audio.dtype} {audio.shape}")
    if offsets.ndim != 1 or offsets.size == 0:
        raise DataError(f"{path}: no recordings ('offsets' has shape {offsets.shape})")
    count = offsets.size
    for name in ("offsets", "lengths", label, "split", "filename"):
        array = arrays[name]
        if array.ndim != 1 or array.size != count:
            raise DataError(f"{path}: '{name}' has {array.size} entries for {count} recordings (shape {array.shape})")
        if name != "filename" and array.dtype.kind not in "iu":
            raise DataError(f"{path}: '{name}' must be integers, got {array.dtype}")
    if arrays["sample_rate"].size != 1 or arrays["sample_rate"].dtype.kind not in "iu" \
            or int(arrays["sample_rate"]) <= 0:
        raise DataError(f"{path}: 'sample_rate' must be one positive integer, got {arrays['sample_rate']!r}")
    if label == "speaker" and arrays["speaker_names"].size != FSDD_CLASSES["speaker"]:
        raise DataError(f"{path}: 'speaker_names' has {arrays['speaker_names'].size} names, expected 6")
    names = arrays["filename"]
    split, targets = arrays["split"], arrays[label]
    _first_bad(path=path, name="split", mask=(split != 0) & (split != 1), values=split, names=names,
               expected="0 (train) or 1 (test)")
    _first_bad(path=path, name=label, mask=(targets < 0) | (targets >= FSDD_CLASSES[label]), values=targets,
               names=names, expected=f"0..{FSDD_CLASSES[label] - 1}")
    lengths = arrays["lengths"]
    bad = [f"{names[i]} (offset {start}, length {length})"
           for i, (start, length) in enumerate(zip(offsets.tolist(), lengths.tolist()))
           if length <= 0 or start < 0 or start + length > audio.shape[0]]
    if bad:
        raise DataError(f"{path}: {len(bad)} recordings are empty or out of range: {', '.join(bad[:5])}")
    if not (split == 0).any():
        raise DataError(f"{path}: no training recordings ('split' is never 0)")
    return arrays


def _decode(*, path: Path) -> str:
    return read_utf8(path, hint="save the manifest as UTF-8")


def read_manifest(*, data_root: Path, value: str, key: str, column: str) -> tuple[list[Path], list[str]]:
    """CSV with a header ``path,label[,speaker]``; ``value`` is the recipe's path (``key``, e.g. ``data.train``).

    Audio paths are relative to the CSV's folder, and like the CSV they must stay inside the data root. A row with
    more or fewer fields than the header is an error naming the row (its extra values would be guesses).
    """
    path = resolve_data_path(data_root, value, key=key)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}")
    reader = csv.reader(io.StringIO(_decode(path=path), newline=""))
    files: list[Path] = []
    labels: list[str] = []
    try:
        header = [field.strip() for field in next(reader, [])]
        for needed in ("path", column):
            if needed not in header:
                raise DataError(f"{path}: needs a '{needed}' column, has {', '.join(header) or 'no header'}")
        if len(set(header)) != len(header):
            raise DataError(f"{path}: the header names a column twice ({', '.join(header)})")
        where, at = header.index("path"), header.index(column)
        for row in reader:
            if not row:
                continue  # a blank line holds no recording
            row_name = f"{path}, row {reader.line_num}"
            if len(row) != len(header):
                raise DataError(f"{row_name}: {len(row)} fields, but the header has {len(header)} "
                                f"({', '.join(header)})")
            file, label = row[where].strip(), row[at].strip()
            if not file or not label:
                raise DataError(f"{row_name}: empty 'path' or '{column}'")
            relative = Path(file) if Path(file).is_absolute() else Path(value).parent / file
            target = resolve_data_path(data_root, relative, key=row_name)
            if not target.is_file():  # soundfile's "System error" would name neither the manifest nor the row
                what = "is a folder, not an audio file" if target.is_dir() else "not found"
                raise DataError(f"{row_name}: audio file {target} {what}", missing_path=None if target.exists()
                                else target)
            files.append(target)
            labels.append(label)
    except csv.Error as error:
        raise DataError(f"{path}, row {reader.line_num}: {error}") from error
    if not files:
        raise DataError(f"{path}: manifest has no rows")
    return files, labels
