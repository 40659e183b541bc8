"""Property tests of every tabular reader (``tabular_file`` on CSV and Parquet, the UCI Adult reader, saved schema
files): random bytes, truncations and overwrites of a valid file, non-finite values and empty files either load
faithfully (every row written is loaded: train + test rows = the file's rows) or raise ``DataError`` naming the
file — never another exception, never a silent drop."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omnissl_tabular.datasets import read_adult, tabular_file
from omnissl_tabular.schema import TabularSchema

from omnissl.core.errors import DataError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.usefixtures("one_thread")
ROWS = 16
FRAME = pd.DataFrame({"a": np.round(np.linspace(-2, 5, ROWS), 3), "b": np.arange(ROWS) * 10,
                      "c": [["x", "y", "z"][i % 3] for i in range(ROWS)],
                      "target": [["no", "yes"][i % 2] for i in range(ROWS)]})
CSV = FRAME.to_csv(index=False).encode()


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = BytesIO()
    frame.to_parquet(buffer)
    return buffer.getvalue()


PARQUET = _parquet(FRAME)
ADULT_ROW = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, "
             "40, United-States, {}")
ADULT = "\n".join(ADULT_ROW.format(["<=50K", ">50K"][i % 2]) for i in range(6)) + "\n"
SCHEMA = json.dumps(TabularSchema.infer(FRAME, target="target").to_json(), indent=1).encode()


def outcome(name: str, data: bytes, load: Callable[[Path], Any]) -> Any:
    """Write ``data`` as ``name`` under a fresh data root and load; a ``DataError`` must name the file."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / name).write_bytes(data)
        previous = os.environ.get("OMNISSL_CACHE_DIR")
        os.environ["OMNISSL_CACHE_DIR"] = str(root / "cache")  # fitted schemas go with the example, not ~/.cache
        try:
            return load(root)
        except DataError as error:
            assert name in str(error), str(error)
            return None
        finally:
            if previous is None:
                os.environ.pop("OMNISSL_CACHE_DIR", None)
            else:
                os.environ["OMNISSL_CACHE_DIR"] = previous


def mutate(base: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(base[: cut % (len(base) + 1)])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    return bytes(data)


def rows_in(text: str) -> int:
    """Data rows of an unquoted CSV: non-blank lines after the header (pandas skips blank lines too)."""
    return max(0, len([line for line in text.splitlines() if line.strip()]) - 1)


def _table(name: str) -> Callable[[Path], Any]:
    return lambda root: tabular_file(train=name, target="target", data_root=root)


cuts = st.integers(0, 20_000)
flips = st.lists(st.tuples(st.integers(0, 20_000), st.integers(0, 255)), max_size=3)


# ----------------------------------------------------------------------------------------------- CSV / Parquet
@SETTINGS
@given(cut=cuts, change=flips)
@example(cut=0, change=[])
@example(cut=len(CSV) - 2, change=[])  # the last row's target cut short
@example(cut=CSV.index(b"\n") + 1, change=[])  # header only
def test_csv_truncated_or_overwritten(cut: int, change: list[tuple[int, int]]) -> None:
    content = mutate(CSV, cut, change)
    bundle = outcome("t.csv", content, _table("t.csv"))
    if bundle is not None and not change:
        assert len(bundle.train) + len(bundle.test) == rows_in(content.decode())


@SETTINGS
@given(data=st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@example(data=b"")
@example(data=b"a,a,target\n1,2,no\n3,4,yes\n")
@example(data=b"PAR1")
def test_csv_random_content(data: bytes) -> None:
    outcome("t.csv", data, _table("t.csv"))


@SETTINGS
@given(cut=cuts, change=flips)
@example(cut=len(PARQUET), change=[])
@example(cut=4, change=[])
def test_parquet_truncated_or_overwritten(cut: int, change: list[tuple[int, int]]) -> None:
    bundle = outcome("t.parquet", mutate(PARQUET, cut, change), _table("t.parquet"))
    if bundle is not None:  # the row count lives in the footer: a load that worked has every row
        assert len(bundle.train) + len(bundle.test) == ROWS


@SETTINGS
@given(kind=st.sampled_from(["csv", "parquet"]), row=st.integers(0, ROWS - 1), column=st.sampled_from(["a", "b"]),
       value=st.sampled_from([np.inf, -np.inf, 1e300, np.nan]))
def test_non_finite_cells(kind: str, row: int, column: str, value: float) -> None:
    frame = FRAME.astype({"b": float})
    frame.loc[row, column] = value
    content = frame.to_csv(index=False).encode() if kind == "csv" else _parquet(frame)
    bundle = outcome(f"t.{kind}", content, _table(f"t.{kind}"))
    if np.isnan(value):  # NaN is a missing value: filled, counted, and the row kept
        assert bundle is not None and len(bundle.train) + len(bundle.test) == ROWS
        assert sum(split["missing"][column] for split in bundle.input_spec["missing_counts"].values()) == 1
    elif np.isinf(value):
        assert bundle is None
    elif bundle is not None:  # 1e300 may load, but only with finite features
        assert bool(bundle.train.numeric.isfinite().all()) and bool(bundle.test.numeric.isfinite().all())


# ----------------------------------------------------------------------------------------------- Adult
@SETTINGS
@given(layer=st.sampled_from(["text", "gzip"]), cut=cuts, change=flips)
@example(layer="gzip", cut=0, change=[])
@example(layer="text", cut=len(ADULT) - 3, change=[])
def test_adult_reader_truncated_or_overwritten(layer: str, cut: int, change: list[tuple[int, int]]) -> None:
    text = mutate(ADULT.encode(), cut, change) if layer == "text" else ADULT.encode()
    packed = gzip.compress(text, mtime=0)
    content = packed if layer == "text" else mutate(packed, cut, change)
    frame = outcome("a.data.gz", content, lambda root: read_adult(root / "a.data.gz", test_file=False))
    if frame is not None and not change:
        assert len(frame) == rows_in("header\n" + text.decode())
        assert frame["income"].isin(["<=50K", ">50K"]).all()


@SETTINGS
@given(field=st.sampled_from([0, 2, 4, 10, 11, 12]), row=st.integers(0, 5),
       token=st.sampled_from(["inf", "-inf", "abc", "1e999", "?"]))
def test_adult_numeric_fields(field: int, row: int, token: str) -> None:
    lines = ADULT.splitlines()
    fields = lines[row].split(", ")
    fields[field] = token
    lines[row] = ", ".join(fields)
    frame = outcome("a.data.gz", gzip.compress(("\n".join(lines) + "\n").encode()),
                    lambda root: read_adult(root / "a.data.gz", test_file=False))
    if token == "?":  # missing: kept as NaN, the row stays
        assert frame is not None and len(frame) == 6 and frame.iloc[row].isna().sum() == 1
    else:
        assert frame is None


# ----------------------------------------------------------------------------------------------- schema files
json_values = st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                      max_size=4), max_leaves=12)


@SETTINGS
@given(mode=st.sampled_from(["cut", "bytes", "json"]), cut=cuts, change=flips, data=st.binary(max_size=200),
       value=json_values)
@example(mode="cut", cut=len(SCHEMA), change=[], data=b"", value=None)
def test_schema_file(mode: str, cut: int, change: list[tuple[int, int]], data: bytes, value: Any) -> None:
    content = {"cut": mutate(SCHEMA, cut, change), "bytes": data, "json": json.dumps(value).encode()}[mode]
    schema = outcome("s.json", content, lambda root: TabularSchema.load(root / "s.json"))
    if schema is not None:
        if content == SCHEMA:
            assert schema == TabularSchema.from_json(json.loads(SCHEMA))
        try:  # a schema that loads is usable: finite features for every row, or an error naming the data
            out = schema.transform(FRAME, source="frame")
        except DataError as error:
            assert str(error).startswith("frame: "), str(error)
            return
        assert out.numeric.shape[0] == ROWS and np.isfinite(out.numeric).all()


@SETTINGS
@given(column=st.integers(0, 2), key=st.sampled_from(["mean", "std"]),
       value=st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, "1", None, True]))
def test_schema_file_with_bad_statistics(column: int, key: str, value: Any) -> None:
    raw = json.loads(SCHEMA)
    raw["columns"][column][key] = value
    schema = outcome("s.json", json.dumps(raw).encode(), lambda root: TabularSchema.load(root / "s.json"))
    if key == "mean" and value in (-1.0, 0.0):
        assert schema is not None
    else:
        assert schema is None
