"""Property tests of every time-series reader (``.ts``, wide and long CSV, ``.npz``, ``.npy`` + labels, UCR/UEA
folders in both sources): random bytes, truncations and overwrites of a valid file, non-finite values and empty
files either load faithfully (every series written is loaded) or raise ``DataError`` naming the file — never
another exception, never a silent drop."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from omnissl_timeseries.data import timeseries_files, ucr_uea
from omnissl_timeseries.tsfile import read_ts

from omnissl.core.errors import DataError

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
pytestmark = pytest.mark.usefixtures("one_thread")
NON_FINITE = ["inf", "-inf", "Infinity", "1e39", "-3.5e38"]  # the last two overflow float32
TS = ("# fuzz\n@problemName F\n@univariate true\n@equalLength false\n@classLabel true a b\n@data\n"
      "1.5,2,3,4:a\n0.5,-1,2:b\n7,8,9,10,11:a\n?,1,2:b\n3,3,3:a\n")
WIDE = "label,t0,t1,t2,t3\na,1,2,3,4\nb,0.5,?,1,2\na,-1,-2,-3,-4\nb,9,8,7,6\na,1e3,2e3,,4e3\n"
LONG = "id,time,u,v,label\ns1,0,1,2,a\ns1,1,3,4,a\ns2,0,5,6,b\ns2,1,7,8,b\ns3,0,9,1,a\n"


def _npz(**arrays: Any) -> bytes:
    buffer = BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


SERIES = np.random.default_rng(0).normal(size=(6, 2, 8)).astype(np.float32)
NPZ = _npz(x=SERIES, y=np.arange(6) % 2)
NPY, NPY_LABELS = _npy(SERIES), _npy(np.arange(6) % 3)


def outcome(files: dict[str, bytes], load: Callable[[Path], Any], blame: str) -> Any:
    """Write ``files`` under a fresh data root and load; a ``DataError`` must name ``blame`` (the mutated file)."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        try:
            return load(root)
        except DataError as error:
            assert blame in str(error), str(error)
            return None


def data_lines(text: str, *, after: str | None = None) -> list[str]:
    """Non-blank, non-comment lines (after the line ``after`` when given): the rows a faithful reader loads."""
    lines = [line.strip() for line in text.splitlines()]
    if after is not None:
        lowered = [line.lower() for line in lines]
        lines = lines[lowered.index(after) + 1:] if after in lowered else []
    return [line for line in lines if line and not line.startswith("#")]


def mutate(base: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    data = bytearray(base[:cut])
    for position, value in flips:
        if position < len(data):
            data[position] = value
    return bytes(data)


cuts = st.integers(0, 10_000)
flips = st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3)


# ----------------------------------------------------------------------------------------------- .ts
def _ts(root: Path) -> Any:
    return read_ts(root / "f.ts")


@SETTINGS
@given(cut=cuts, data=st.binary(max_size=300), use_random=st.booleans())
@example(cut=0, data=b"", use_random=False)
def test_ts_truncated_or_random_bytes(cut: int, data: bytes, use_random: bool) -> None:
    content = data if use_random else TS.encode()[: cut % (len(TS) + 1)]
    parsed = outcome({"f.ts": content}, _ts, "f.ts")
    if parsed is not None and not use_random:
        assert len(parsed.series) == len(data_lines(content.decode(), after="@data"))


@SETTINGS
@given(case=st.integers(0, 4), position=st.integers(0, 2), token=st.sampled_from(NON_FINITE + ["nan"]))
def test_ts_non_finite_value_is_refused_and_nan_is_missing(case: int, position: int, token: str) -> None:
    lines = TS.splitlines()
    start = lines.index("@data") + 1
    values, label = lines[start + case].split(":")
    parts = values.split(",")
    parts[position] = token
    lines[start + case] = ",".join(parts) + ":" + label
    parsed = outcome({"f.ts": ("\n".join(lines) + "\n").encode()}, _ts, "f.ts")
    assert (parsed is None) == (token != "nan")
    if parsed is not None:
        assert len(parsed.series) == 5 and np.isnan(parsed.series[case][0, position])


# ----------------------------------------------------------------------------------------------- CSV
def _wide(root: Path) -> Any:
    return timeseries_files(train="f.csv", data_root=root)


def _long(root: Path) -> Any:
    return timeseries_files(train="f.csv", csv_layout="long", data_root=root)


@SETTINGS
@given(layout=st.sampled_from(["wide", "long"]), cut=cuts, change=flips)
@example(layout="wide", cut=0, change=[])
@example(layout="wide", cut=len(WIDE) - 2, change=[])  # the last row loses its last field
def test_csv_truncated_or_overwritten(layout: str, cut: int, change: list[tuple[int, int]]) -> None:
    base = (WIDE if layout == "wide" else LONG).encode()
    content = mutate(base, cut % (len(base) + 1), change)
    bundle = outcome({"f.csv": content}, _wide if layout == "wide" else _long, "f.csv")
    if bundle is not None and not change:  # a pure cut: count the rows a faithful reader must keep
        rows = data_lines(content.decode())[1:]
        expected = len(rows) if layout == "wide" else len({row.split(",")[0] for row in rows})
        assert len(bundle.train) == expected


@SETTINGS
@given(layout=st.sampled_from(["wide", "long"]), data=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
@example(layout="wide", data=b"")
@example(layout="wide", data=b"\xef\xbb\xbflabel,t0\na,1\n")
def test_csv_random_content(layout: str, data: bytes) -> None:
    outcome({"f.csv": data}, _wide if layout == "wide" else _long, "f.csv")


@SETTINGS
@given(layout=st.sampled_from(["wide", "long"]), row=st.integers(1, 5), column=st.integers(1, 3),
       token=st.sampled_from(NON_FINITE))
def test_csv_non_finite_value_is_refused(layout: str, row: int, column: int, token: str) -> None:
    lines = (WIDE if layout == "wide" else LONG).splitlines()
    fields = lines[row].split(",")
    fields[column if layout == "wide" else 2 + column % 2] = token  # long: the value columns are u, v
    lines[row] = ",".join(fields)
    bundle = outcome({"f.csv": ("\n".join(lines) + "\n").encode()}, _wide if layout == "wide" else _long, "f.csv")
    assert bundle is None


# ----------------------------------------------------------------------------------------------- npz / npy
@SETTINGS
@given(kind=st.sampled_from(["npz", "npy", "labels"]), cut=cuts, change=flips)
@example(kind="npz", cut=0, change=[])
@example(kind="npy", cut=10_000, change=[])
def test_arrays_truncated_or_overwritten(kind: str, cut: int, change: list[tuple[int, int]]) -> None:
    base = {"npz": NPZ, "npy": NPY, "labels": NPY_LABELS}[kind]
    content = mutate(base, cut % (len(base) + 1), change)
    files = {"f.npz": content} if kind == "npz" else {"f.npy": NPY if kind == "labels" else content,
                                                     "l.npy": content if kind == "labels" else NPY_LABELS}
    bundle = outcome(files, lambda root: timeseries_files(train=f"f.{'npz' if kind == 'npz' else 'npy'}",
                                                          train_labels=None if kind == "npz" else "l.npy",
                                                          data_root=root),
                     {"npz": "f.npz", "npy": "f.npy", "labels": "l.npy"}[kind])
    if bundle is not None and (kind == "npz" or not change):  # npz members are CRC-checked; npy values are not
        assert len(bundle.train) == 6
        if kind == "npz":
            np.testing.assert_array_equal(bundle.train.values.numpy(), SERIES)


@SETTINGS
@given(kind=st.sampled_from(["npz", "npy"]), index=st.tuples(st.integers(0, 5), st.integers(0, 1), st.integers(0, 7)),
       value=st.sampled_from([np.inf, -np.inf, 1e39, -1e300]))
def test_arrays_non_finite_value_is_refused(kind: str, index: tuple[int, int, int], value: float) -> None:
    x = SERIES.astype(np.float64)
    x[index] = value
    content = _npz(x=x, y=np.arange(6) % 2) if kind == "npz" else _npy(x)
    assert outcome({f"f.{kind}": content}, lambda root: timeseries_files(train=f"f.{kind}", data_root=root),
                   f"f.{kind}") is None


# ----------------------------------------------------------------------------------------------- UCR/UEA folders
UCR_NPZ = _npz(X_train=SERIES, y_train=np.arange(6) % 2, X_test=SERIES[:3], y_test=np.arange(3) % 2,
               class_labels=np.array(["a", "b"]))


@SETTINGS
@given(target=st.sampled_from(["TRAIN", "TEST", "npz"]), cut=cuts, change=flips)
@example(target="TEST", cut=0, change=[])
def test_ucr_folder_with_one_damaged_file(target: str, cut: int, change: list[tuple[int, int]]) -> None:
    files = {"timeseries/F/F_TRAIN.ts": TS.encode(), "timeseries/F/F_TEST.ts": TS.encode(),
             "timeseries/F/F.npz": UCR_NPZ}
    name = f"F_{target}.ts" if target != "npz" else "F.npz"
    files[f"timeseries/F/{name}"] = mutate(files[f"timeseries/F/{name}"], cut % 20_000, change)
    bundle = outcome(files, lambda root: ucr_uea(dataset="F", source="npz" if target == "npz" else "ts",
                                                 data_root=root), name)
    if bundle is not None and not change:
        if target == "npz":
            assert (len(bundle.train), len(bundle.test)) == (6, 3)
        else:
            damaged = files[f"timeseries/F/{name}"].decode()
            split = bundle.train if target == "TRAIN" else bundle.test
            assert len(split) == len(data_lines(damaged, after="@data"))
