"""Tabular readers under bad input (audit issue 17): non-finite cells (F11), duplicate column names (F17), files
without rows (F18), recipe paths outside the data root (F15) and corrupt schema files. Each case must raise a
DataError naming the file (and the column/row where there is one), never load something else silently."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from omnissl.core.errors import DataError
from omnissl.core.paths import ALLOW_OUTSIDE_ENV
from omnissl_tabular.data import read_table
from omnissl_tabular.datasets import ADULT_COLUMNS, adult, read_adult, tabular_file
from omnissl_tabular.schema import TabularSchema


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNISSL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)


def good_frame(rows: int = 12) -> pd.DataFrame:
    return pd.DataFrame({"a": np.arange(rows, dtype=float), "b": np.linspace(0, 1, rows),
                         "c": [["x", "y", "z"][i % 3] for i in range(rows)],
                         "target": [["no", "yes"][i % 2] for i in range(rows)]})


def write_csv(root: Path, name: str, frame: pd.DataFrame) -> str:
    frame.to_csv(root / name, index=False)
    return name


# ----------------------------------------------------------------------------------------------- F11: inf
def test_inf_in_a_csv_test_cell_names_file_column_and_row(tmp_path: Path) -> None:
    write_csv(tmp_path, "train.csv", good_frame())
    test = good_frame(6)
    test.loc[4, "b"] = np.inf
    write_csv(tmp_path, "test.csv", test)
    with pytest.raises(DataError, match=r"test\.csv.*column 'b'.*row 4.*line 6.*inf"):
        tabular_file(train="train.csv", test="test.csv", target="target", data_root=tmp_path)


def test_inf_in_a_parquet_cell_is_refused_not_a_nan_column(tmp_path: Path) -> None:
    frame = good_frame()
    frame.loc[3, "b"] = -np.inf
    frame.to_parquet(tmp_path / "inf.parquet")
    with pytest.raises(DataError, match=r"inf\.parquet.*column 'b'.*row 3.*-inf"):
        tabular_file(train="inf.parquet", target="target", data_root=tmp_path)


def test_schema_refuses_inf_and_float32_overflow_in_frames_from_python() -> None:
    frame = good_frame()
    with pytest.raises(DataError, match=r"frame\.py: column 'a' row 2 holds inf"):
        TabularSchema.infer(frame.assign(a=[0, 1, np.inf] + [1.0] * 9), target="target", source="frame.py")
    with pytest.raises(DataError, match=r"frame\.py: column 'a'.*too large"):
        TabularSchema.infer(frame.assign(a=[1e300, -1e300] + [1.0] * 10), target="target", source="frame.py")
    schema = TabularSchema.infer(frame, target="target")
    with pytest.raises(DataError, match=r"test\.parquet: numeric column 'b' row 1 holds -inf"):
        schema.transform(good_frame(3).assign(b=[0.0, -np.inf, 1.0]), source="test.parquet")
    with pytest.raises(DataError, match=r"test\.parquet: numeric column 'b' row 2.*float32"):
        schema.transform(good_frame(3).assign(b=[0.0, 0.5, 1e300]), source="test.parquet")


# ----------------------------------------------------------------------------------------------- F17: duplicates
def test_duplicate_column_names_are_refused_not_renamed(tmp_path: Path) -> None:
    (tmp_path / "dup.csv").write_text("a,a,target\n1,2,no\n3,4,yes\n5,6,no\n7,8,yes\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dup\.csv.*column 'a' appears 2 times"):
        read_table(tmp_path / "dup.csv")
    # a real column called 'a.1' next to 'a' is fine: only true duplicates are refused
    (tmp_path / "ok.csv").write_text("a,a.1,target\n1,2,no\n3,4,yes\n", encoding="utf-8")
    assert list(read_table(tmp_path / "ok.csv").columns) == ["a", "a.1", "target"]
    frame = pd.DataFrame([[1, 2, "no"], [3, 4, "yes"]], columns=["a", "a", "target"])
    with pytest.raises(DataError, match=r"frame: column 'a' appears 2 times"):
        TabularSchema.infer(frame, target="target", source="frame")


# ----------------------------------------------------------------------------------------------- F18: no rows
def test_header_only_test_file_is_refused_naming_it(tmp_path: Path) -> None:
    write_csv(tmp_path, "train.csv", good_frame())
    (tmp_path / "test.csv").write_text("a,b,c,target\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"test\.csv: no rows"):
        tabular_file(train="train.csv", test="test.csv", target="target", data_root=tmp_path)


def test_header_only_train_and_zero_row_parquet_say_no_rows(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("a,b,c,target\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.csv: no rows") as error:
        tabular_file(train="train.csv", target="target", data_root=tmp_path)
    assert "entirely missing" not in str(error.value)
    good_frame().iloc[:0].to_parquet(tmp_path / "zero.parquet")
    with pytest.raises(DataError, match=r"zero\.parquet: no rows"):
        tabular_file(train="zero.parquet", target="target", data_root=tmp_path)


def test_a_held_out_split_without_rows_is_refused(tmp_path: Path) -> None:
    write_csv(tmp_path, "small.csv", good_frame(4))  # 2 rows per class: 20 % of 2 rounds to 0 test rows
    with pytest.raises(DataError, match=r"small\.csv.*held-out.*no rows"):
        tabular_file(train="small.csv", target="target", data_root=tmp_path)


# ----------------------------------------------------------------------------------------------- F15: paths
@pytest.mark.parametrize("key", ["train", "test", "schema"])
def test_every_file_parameter_stays_inside_the_data_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    write_csv(root, "train.csv", good_frame())
    write_csv(tmp_path, "outside.csv", good_frame())
    params = {"train": "train.csv", "target": "target", "data_root": root, key: "../outside.csv"}
    with pytest.raises(DataError, match=rf"data\.{key}: path '\.\./outside\.csv' leaves the data root"):
        tabular_file(**params)
    params[key] = str(tmp_path / "outside.csv")
    with pytest.raises(DataError, match=rf"data\.{key}: path .* is outside the data root"):
        tabular_file(**params)


def test_outside_paths_load_when_the_user_opts_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_csv(tmp_path, "outside.csv", good_frame())
    (tmp_path / "root").mkdir()
    monkeypatch.setenv(ALLOW_OUTSIDE_ENV, "1")
    bundle = tabular_file(train=str(tmp_path / "outside.csv"), target="target", data_root=tmp_path / "root")
    assert len(bundle.train) + len(bundle.test) == 12


# ----------------------------------------------------------------------------------------------- schema files
@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00garbage", "not valid UTF-8 JSON"),
    (b"[1, 2]", "not a tabular schema"),
    (b'{"version": 1, "target": "y", "classes": "ab", "columns": []}', "classes"),
])
def test_corrupt_schema_files_name_the_file(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "s.json").write_bytes(content)
    with pytest.raises(DataError, match=r"s\.json") as error:
        TabularSchema.load(tmp_path / "s.json")
    assert message in str(error.value)


def test_schema_with_non_finite_statistics_is_refused(tmp_path: Path) -> None:
    schema = TabularSchema.infer(good_frame(), target="target")
    raw = schema.to_json()
    raw["columns"][0]["std"] = float("nan")
    (tmp_path / "s.json").write_text(json.dumps(raw), encoding="utf-8")  # json writes NaN, json.loads reads it
    with pytest.raises(DataError, match=r"s\.json: column 'a': std must be a finite number > 0"):
        TabularSchema.load(tmp_path / "s.json")


# ----------------------------------------------------------------------------------------------- adult
def adult_lines(rows: int = 4) -> list[str]:
    row = ("39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, "
           "40, United-States, {}")
    return [row.format("<=50K" if i % 2 else ">50K") for i in range(rows)]


def test_adult_numeric_column_holding_text_or_inf_is_refused(tmp_path: Path) -> None:
    lines = adult_lines()
    lines[2] = lines[2].replace("39,", "abc,", 1)
    (tmp_path / "a.data.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(DataError, match=r"a\.data\.gz.*column 'age'.*'abc'"):
        read_adult(tmp_path / "a.data.gz", test_file=False)
    lines = adult_lines()
    lines[1] = lines[1].replace("77516", "inf")
    (tmp_path / "b.data.gz").write_bytes(gzip.compress("\n".join(lines).encode()))
    with pytest.raises(DataError, match=r"b\.data\.gz.*column 'fnlwgt'.*inf"):
        read_adult(tmp_path / "b.data.gz", test_file=False)
    good = read_adult(_write_gz(tmp_path / "c.data.gz", adult_lines()), test_file=False)
    assert len(good) == 4 and list(good.columns) == list(ADULT_COLUMNS)


def _write_gz(path: Path, lines: list[str]) -> Path:
    path.write_bytes(gzip.compress("\n".join(lines).encode()))
    return path


def test_adult_validation_carve_is_stratified_disjoint_and_never_reads_the_test_file(tmp_path: Path) -> None:
    """Model selection (issue 24): a seeded, stratified part of adult.data is the evaluation split; no test file."""
    lines = [line.replace("77516", str(1000 + i)) for i, line in enumerate(adult_lines(40))]  # fnlwgt = row id
    (tmp_path / "adult").mkdir()
    _write_gz(tmp_path / "adult" / "adult.data.gz", lines)
    bundle = adult(data_root=tmp_path, validation_fraction=0.25)
    assert (len(bundle.train), len(bundle.test)) == (30, 10) and int(bundle.test.labels.sum()) == 5
    ids = np.concatenate([bundle.train.numeric[:, 1].numpy(), bundle.test.numeric[:, 1].numpy()])
    assert len(np.unique(ids.round(5))) == 40  # numeric column 1 is fnlwgt: every row lies in exactly one part
    assert "validation" in bundle.description and not (tmp_path / "adult" / "adult.test.gz").exists()
    again = adult(data_root=tmp_path, validation_fraction=0.25)
    assert np.array_equal(again.test.numeric.numpy(), bundle.test.numeric.numpy())  # seeded: the same carve
    with pytest.raises(DataError, match="validation_fraction"):
        adult(data_root=tmp_path, validation_fraction=1.0)
