"""A strict CSV row reader for the time-series CSV layouts (audit issue 17: F17, F18).

pandas pads a row that lost its last fields with NaN, which the series readers cannot tell from a value written as
missing (``?`` or an empty field), renames a repeated column ``v`` to ``v.1``, and reports a 0-byte file as "No
columns to parse from file" without its name. Reading the rows with :mod:`csv` first keeps the exact line of every
row, so each of those cases becomes a :class:`~omnissl.core.errors.DataError` naming the file and the line.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pandas as pd

from omnissl.core.errors import DataError

MISSING_TOKENS = ("", "?", "NaN", "nan")  # what a series CSV may write for a missing value


def read_rows(path: Path) -> tuple[pd.DataFrame, list[int]]:
    """The file's rows as a frame of strings (missing tokens → ``None``) and the 1-based line where each row starts.

    Blank lines are skipped, as pandas does. A row with more or fewer fields than the header is refused.
    """
    records: list[tuple[int, list[str]]] = []
    line = 0
    try:
        with path.open("r", encoding="utf-8-sig", newline="") as handle:  # -sig: a BOM is not part of a name
            reader = csv.reader(handle)
            for row in reader:
                if row:
                    records.append((line + 1, row))
                line = reader.line_num
    except UnicodeDecodeError as error:
        raise DataError(f"{path}: not a UTF-8 text file ({error})") from None
    except csv.Error as error:
        raise DataError(f"{path}:{line + 1}: not a readable CSV row ({error})") from None
    if not records:
        raise DataError(f"{path}: empty file (no header line)")
    header_line, header = records[0]
    repeated = [(name, n) for name, n in Counter(header).items() if n > 1]
    if repeated:
        raise DataError(f"{path}:{header_line}: column '{repeated[0][0]}' appears {repeated[0][1]} times in the "
                        f"header; column names must be unique")
    for start, row in records[1:]:
        if len(row) != len(header):
            raise DataError(f"{path}:{start}: {len(row)} fields, the header has {len(header)} (a cut or shifted row "
                            f"is not a missing value: write '?' or leave the field empty)")
    frame = pd.DataFrame([row for _, row in records[1:]], columns=header, dtype=object)
    frame = frame.where(~frame.isin(MISSING_TOKENS), None)
    return frame, [start for start, _ in records[1:]]
