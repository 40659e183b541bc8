"""Checks a table or a saved schema passes before it becomes tensors (audit issue 17: F11, F17, F18).

They exist because pandas repairs bad input without a word: it renames a duplicate column ``a`` to ``a.1``,
parses ``inf`` as a number whose mean/std then turn a whole column into NaN, and hands back a header-only file as
a zero-row frame that only fails at evaluation, far from the file. Each check raises a one-line
:class:`~omnissl.core.errors.DataError` naming the file (``source``), the column and the row.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from omnissl.core.errors import DataError

_ROLES = ("numeric", "categorical")
_KINDS = ("number", "text", "bool", "empty")


def check_columns_unique(*, columns: Iterable[Any], source: str) -> None:
    """Refuse repeated column names: which of two ``a`` columns is "the" ``a`` is a guess we do not make."""
    counts = Counter(str(c) for c in columns)
    repeated = [(name, n) for name, n in counts.items() if n > 1]
    if repeated:
        name, n = repeated[0]
        raise DataError(f"{source}: column '{name}' appears {n} times in the header; column names must be unique")


def check_has_rows(*, frame: pd.DataFrame, source: str) -> None:
    """A table without rows is refused where it is read, not when evaluation finds nothing to concatenate."""
    if len(frame) == 0:
        raise DataError(f"{source}: no rows (only a header, or an empty split); nothing to train or evaluate on")


def check_no_inf(*, frame: pd.DataFrame, source: str, first_line: int | None = None) -> None:
    """Refuse ±inf in float columns. NaN stays "missing" (filled and counted); inf has no such meaning and would
    poison the column's mean and std. ``first_line``: the file line of row 0, when the file has lines."""
    for name in frame.columns:
        column = frame[name]
        if not pd.api.types.is_float_dtype(column.dtype):
            continue
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        infinite = np.isinf(values)
        if infinite.any():
            row = int(np.flatnonzero(infinite)[0])
            line = f" (line {row + first_line})" if first_line is not None else ""
            raise DataError(f"{source}: column '{name}' row {row}{line} holds {float(values[row])!r}: infinite "
                            f"values are refused ({int(infinite.sum())} in this column; NaN or an empty cell means "
                            f"missing)")


def first_csv_line(options: dict[str, Any]) -> int | None:
    """The 1-based line of data row 0 in a CSV read with ``options`` (``None`` when skiprows is not a count)."""
    skip = options.get("skiprows") or 0
    if not isinstance(skip, int):
        return None
    return 1 + skip + (0 if options.get("header", "infer") is None else 1)


def _fail(source: str, what: str) -> DataError:
    return DataError(f"{source}: not a tabular schema ({what})")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def check_schema_json(*, raw: Any, source: str, version: int) -> None:
    """A schema file is data too: a hand-edited or truncated one must not turn into NaN features or a class list
    spelled letter by letter (``list("ab")``). Version, types and finiteness of every field are checked here."""
    if not isinstance(raw, dict):
        raise _fail(source, f"the top level is a {type(raw).__name__}, expected an object")
    if raw.get("version") != version:
        raise DataError(f"{source}: schema version {raw.get('version')!r} is not {version}")
    for key in ("target", "columns", "classes"):
        if key not in raw:
            raise _fail(source, f"key '{key}' missing")
    if raw["target"] is not None and not isinstance(raw["target"], str):
        raise _fail(source, "'target' must be a string or null")
    if not _strings(raw["classes"]) or not _strings(raw.get("ignored", [])):
        raise _fail(source, "'classes' and 'ignored' must be lists of strings")
    if not isinstance(raw["columns"], list) or not raw["columns"]:
        raise _fail(source, "'columns' must be a non-empty list")
    for entry in raw["columns"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise _fail(source, "every column must be an object with a string 'name'")
        _check_column(entry, source)
    check_columns_unique(columns=[c["name"] for c in raw["columns"]], source=source)


def _check_column(entry: dict[str, Any], source: str) -> None:
    where = f"{source}: column '{entry['name']}'"
    if entry.get("role") not in _ROLES or entry.get("kind") not in _KINDS:
        raise DataError(f"{where}: role must be one of {_ROLES} and kind one of {_KINDS}")
    mean, std = entry.get("mean", 0.0), entry.get("std", 1.0)
    if not _is_number(mean) or not math.isfinite(mean):
        raise DataError(f"{where}: mean must be a finite number, got {mean!r}")
    if not _is_number(std) or not math.isfinite(std) or std <= 0:
        raise DataError(f"{where}: std must be a finite number > 0, got {std!r}")
    if not _strings(entry.get("vocabulary", [])):
        raise DataError(f"{where}: vocabulary must be a list of strings")
    missing = entry.get("train_missing", 0)
    if not isinstance(missing, int) or isinstance(missing, bool) or missing < 0:
        raise DataError(f"{where}: train_missing must be a count, got {missing!r}")
    if not isinstance(entry.get("missing_indicator", False), bool):
        raise DataError(f"{where}: missing_indicator must be true or false")
