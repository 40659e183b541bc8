"""Array and table readers for time series: ``.npz``, ``.npy`` and CSV, each returning float32 ``(N, C, T)``
values (NaN = missing/padding) and int64 labels ``(N,)``; errors name file, key and row.

Values must be finite once float32: NaN means missing, but ±inf (or a float64 beyond the float32 range) has no
meaning and would only surface as a NaN loss far from the file (audit F11). A corrupt archive of any kind (cut,
overwritten, bad CRC, 0 bytes) is a :class:`DataError` naming it (F12).
"""

from __future__ import annotations

import struct
import tokenize
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from omnissl.core.errors import DataError
from omnissl_timeseries.csvrows import read_rows

_NPY_MAGIC, _ZIP_MAGICS = b"\x93NUMPY", (b"PK\x03\x04", b"PK\x05\x06")
# everything numpy/zipfile raise on a damaged file; a DataError names the file instead of a traceback
# Anything numpy raises on a damaged file: besides the usual I/O and zip errors, a corrupt .npy header reaches
# ast/tokenize (SyntaxError, tokenize.TokenError) and an absurd declared shape a MemoryError (found by the fuzz test).
_CORRUPT = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, struct.error, NotImplementedError,
            RuntimeError, KeyError, IndexError, SyntaxError, tokenize.TokenError, MemoryError, TypeError)


def as_nct(x: np.ndarray, where: str) -> np.ndarray:
    """``(N, T)`` univariate or ``(N, C, T)`` → float32 ``(N, C, T)``; anything else (or inf) is an error."""
    if x.ndim not in (2, 3):
        raise DataError(f"{where}: series array must be (N, T) or (N, C, T), got {x.ndim} dimensions {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise DataError(f"{where}: series array must be real numbers, got dtype {x.dtype}")
    with np.errstate(over="ignore"):  # an overflow to inf is what the check below reports
        out = x.astype(np.float32)
    infinite = np.isinf(out)
    if infinite.any():
        index = tuple(int(i) for i in np.argwhere(infinite)[0])
        raise DataError(f"{where}: index {index} holds {float(x[index])!r}: values must be finite in float32 "
                        f"({int(infinite.sum())} such values; NaN marks missing/padding)")
    return out[:, None, :] if out.ndim == 2 else out


def _labels(y: np.ndarray, count: int, where: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != count:
        raise DataError(f"{where}: labels must be (N,) with N={count}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    bad = (y < -1) | (y > np.iinfo(np.int64).max) if y.size else np.zeros(0, bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where}: label {int(y[row])} at index {row}: labels are class indices >= 0, "
                        f"or -1 for unlabelled")
    return y.astype(np.int64)


def _refusal(path: Path, kind: str, error: BaseException) -> DataError:
    if "allow_pickle" in str(error) or "pickled" in str(error):  # numpy's advice would be to load it unsafely
        return DataError(f"{path}: refused: it holds Python objects (pickled data), which are never loaded")
    return DataError(f"{path}: not a readable {kind} file ({type(error).__name__}: {error})")


def _check_magic(path: Path, kind: str) -> None:
    """numpy answers "contains pickled data" for any bytes it does not recognise: tell the real story first."""
    with path.open("rb") as handle:
        head = handle.read(6)
    if kind == ".npz" and not head.startswith(_ZIP_MAGICS):
        raise DataError(f"{path}: not a readable .npz file ({'0 bytes' if not head else 'no zip signature'})")
    if kind == ".npy" and head != _NPY_MAGIC:
        found = "an .npz archive" if head.startswith(_ZIP_MAGICS) else ("0 bytes" if not head else "no NUMPY header")
        raise DataError(f"{path}: not a readable .npy file ({found})")


def load_npy(path: Path) -> np.ndarray:
    """One array from an ``.npy`` file, or a :class:`DataError` naming the file."""
    _check_magic(path, ".npy")
    try:
        array: Any = np.load(path, allow_pickle=False)
    except _CORRUPT as error:
        raise _refusal(path, ".npy", error) from error
    if not isinstance(array, np.ndarray):
        raise DataError(f"{path}: not a readable .npy file (got {type(array).__name__})")
    return array


def read_npz(path: Path, *, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays ``keys`` from an ``.npz``; series keys (``x``/``X_*``) come back as ``(N, C, T)`` float32."""
    if not path.is_file():
        raise DataError(f".npz file not found: {path}")
    _check_magic(path, ".npz")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in keys if k not in arrays.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; it has {', '.join(arrays.files)}")
            out = {k: arrays[k] for k in keys}  # reading each member checks its CRC
    except DataError:
        raise
    except _CORRUPT as error:
        raise _refusal(path, ".npz", error) from error
    for key in keys:
        if key.lower().startswith("x"):
            out[key] = as_nct(out[key], f"{path}['{key}']")
    for key in keys:
        if key.lower().startswith("y"):
            x_key = "x" if key == "y" else "X" + key[1:]
            out[key] = _labels(out[key], out[x_key].shape[0], f"{path}['{key}']")
    return out


def read_npy(path: Path, labels: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """``.npy`` series ``(N, [C,] T)``; labels from another ``.npy`` ``(N,)`` or −1 (unlabelled) when absent."""
    if not path.is_file():
        raise DataError(f".npy file not found: {path}")
    x = as_nct(load_npy(path), str(path))
    if labels is None:
        return x, np.full(x.shape[0], -1, dtype=np.int64)
    if not labels.is_file():
        raise DataError(f"label file not found: {labels}")
    return x, _labels(load_npy(labels), x.shape[0], str(labels))


def _numeric(frame: object, columns: list[str], path: Path, lines: Sequence[int]) -> np.ndarray:
    import pandas as pd

    values = frame[columns].apply(pd.to_numeric, errors="coerce")  # type: ignore[index]
    raw = frame[columns]  # type: ignore[index]
    bad = values.isna() & raw.notna() & (raw.astype(str).apply(lambda c: c.str.strip()) != "?")
    if bool(bad.to_numpy().any()):
        row, col = np.argwhere(bad.to_numpy())[0]
        raise DataError(f"{path}:{lines[row]}: column '{columns[col]}': '{raw.iloc[row, col]}' is not a number")
    with np.errstate(over="ignore"):  # reported just below
        out = values.to_numpy(dtype=np.float32)
    if np.isinf(out).any():
        row, col = np.argwhere(np.isinf(out))[0]
        raise DataError(f"{path}:{lines[row]}: column '{columns[col]}': '{raw.iloc[row, col]}' is not finite (inf, "
                        f"or beyond the float32 range); '?' or an empty field marks a missing value")
    return out


def _encode(labels: object, path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    strings = [str(v) for v in labels]  # type: ignore[attr-defined]
    names = tuple(sorted(set(strings)))
    lookup = {name: i for i, name in enumerate(names)}
    return np.array([lookup[s] for s in strings], dtype=np.int64), names


def read_csv(path: Path, *, layout: Literal["wide", "long"], label_column: str, id_column: str,
             time_column: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    """Wide: one row per univariate series. Long: one row per (series id, time step), one column per channel.

    Returns values ``(N, C, T)`` (shorter series NaN-padded), labels ``(N,)`` and the label names
    (sorted strings; ``None`` and labels −1 when there is no label column).
    """
    import pandas as pd

    if not path.is_file():
        raise DataError(f"CSV file not found: {path}")
    frame, lines = read_rows(path)
    if frame.empty:
        raise DataError(f"{path}: no rows")
    has_label = label_column in frame.columns
    if layout == "wide":
        columns = [c for c in frame.columns if c != label_column]
        if not columns:
            raise DataError(f"{path}: no value columns besides '{label_column}'")
        if has_label and frame[label_column].isna().any():
            row = int(np.flatnonzero(frame[label_column].isna().to_numpy())[0])
            raise DataError(f"{path}:{lines[row]}: label missing in column '{label_column}'")
        values = _numeric(frame, columns, path, lines)[:, None, :]
        if has_label:
            y, names = _encode(frame[label_column], path)
            return values, y, names
        return values, np.full(len(values), -1, dtype=np.int64), None
    for column in (id_column, time_column):
        if column not in frame.columns:
            raise DataError(f"{path}: long layout needs column '{column}'; has {', '.join(frame.columns)}")
    channels = [c for c in frame.columns if c not in (id_column, time_column, label_column)]
    if not channels:
        raise DataError(f"{path}: no value (channel) columns")
    frame = frame.assign(_line=lines)
    times = pd.to_numeric(frame[time_column], errors="coerce")
    if (times.isna() | np.isinf(times.astype(float))).any():
        first = int(frame["_line"][times.isna() | np.isinf(times.astype(float))].iloc[0])
        raise DataError(f"{path}:{first}: column '{time_column}' is not numeric (or not finite)")
    frame = frame.assign(_t=times).sort_values([id_column, "_t"], kind="stable")
    series, labels = [], []
    for key, group in frame.groupby(id_column, sort=False):
        if group["_t"].duplicated().any():
            line = int(group["_line"][group["_t"].duplicated()].iloc[0])
            raise DataError(f"{path}:{line}: series '{key}' repeats time {group['_t'][group['_t'].duplicated()].iloc[0]}")
        series.append(_numeric(group.reset_index(drop=True), channels, path, group["_line"].to_numpy()).T)
        if has_label:
            found = group[label_column].dropna().unique()
            if len(found) != 1:
                raise DataError(f"{path}: series '{key}' has {'no label' if not len(found) else f'labels {list(found)}'}"
                                f" in column '{label_column}' (expected exactly one)")
            labels.append(found[0])
    longest = max(s.shape[1] for s in series)
    values = np.full((len(series), len(channels), longest), np.nan, dtype=np.float32)
    for i, s in enumerate(series):
        values[i, :, : s.shape[1]] = s
    if has_label:
        y, names = _encode(labels, path)
        return values, y, names
    return values, np.full(len(series), -1, dtype=np.int64), None
