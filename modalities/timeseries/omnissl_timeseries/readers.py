"""Array and table readers for time series: ``.npz``, ``.npy`` and CSV (via pandas), each returning
float32 ``(N, C, T)`` values (NaN = missing/padding) and int64 labels ``(N,)``; errors name file, key and row."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from omnissl.errors import DataError


def as_nct(x: np.ndarray, where: str) -> np.ndarray:
    """``(N, T)`` univariate or ``(N, C, T)`` → float32 ``(N, C, T)``; anything else is an error."""
    if x.ndim == 2:
        x = x[:, None, :]
    if x.ndim != 3:
        raise DataError(f"{where}: series array must be (N, T) or (N, C, T), got {x.ndim} dimensions {x.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"{where}: series array must be numeric, got dtype {x.dtype}")
    return x.astype(np.float32)


def _labels(y: np.ndarray, count: int, where: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != count:
        raise DataError(f"{where}: labels must be (N,) with N={count}, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{where}: labels must be integer class indices, got dtype {y.dtype}")
    return y.astype(np.int64)


def read_npz(path: Path, *, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays ``keys`` from an ``.npz``; series keys (``x``/``X_*``) come back as ``(N, C, T)`` float32."""
    if not path.is_file():
        raise DataError(f".npz file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in keys if k not in arrays.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; it has {', '.join(arrays.files)}")
            out = {k: arrays[k] for k in keys}
    except (OSError, ValueError) as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz file ({error})") from error
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
    try:
        x = as_nct(np.load(path, allow_pickle=False), str(path))
        if labels is None:
            return x, np.full(x.shape[0], -1, dtype=np.int64)
        if not labels.is_file():
            raise DataError(f"label file not found: {labels}")
        return x, _labels(np.load(labels, allow_pickle=False), x.shape[0], str(labels))
    except ValueError as error:
        if isinstance(error, DataError):
            raise
        raise DataError(f"{path}: not a readable .npy file ({error})") from error


def _numeric(frame: object, columns: list[str], path: Path, lines: np.ndarray | None = None) -> np.ndarray:
    import pandas as pd

    values = frame[columns].apply(pd.to_numeric, errors="coerce")  # type: ignore[index]
    raw = frame[columns]  # type: ignore[index]
    bad = values.isna() & raw.notna() & (raw.astype(str).apply(lambda c: c.str.strip()) != "?")
    if bool(bad.to_numpy().any()):
        row, col = np.argwhere(bad.to_numpy())[0]
        line = int(lines[row]) if lines is not None else row + 2  # +2: header line, 1-based numbering
        raise DataError(f"{path}:{line}: column '{columns[col]}': '{raw.iloc[row, col]}' is not a number")
    return values.to_numpy(dtype=np.float32)


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
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=["", "?", "NaN", "nan"])
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: not a readable CSV file ({error})") from error
    if frame.empty:
        raise DataError(f"{path}: no rows")
    has_label = label_column in frame.columns
    if layout == "wide":
        columns = [c for c in frame.columns if c != label_column]
        if not columns:
            raise DataError(f"{path}: no value columns besides '{label_column}'")
        if has_label and frame[label_column].isna().any():
            row = int(np.flatnonzero(frame[label_column].isna().to_numpy())[0])
            raise DataError(f"{path}:{row + 2}: label missing in column '{label_column}'")
        values = _numeric(frame, columns, path)[:, None, :]
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
    frame = frame.assign(_line=np.arange(len(frame)) + 2)
    times = pd.to_numeric(frame[time_column], errors="coerce")
    if times.isna().any():
        raise DataError(f"{path}:{int(frame['_line'][times.isna()].iloc[0])}: column '{time_column}' is not numeric")
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
