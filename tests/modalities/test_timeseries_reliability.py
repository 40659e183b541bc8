"""Time-series readers under bad input (audit issue 17): non-finite values (F11), corrupt .npz/.npy (F12), short
CSV rows (F17), empty CSV files (F18) and recipe paths outside the data root (F15). Each must raise a DataError
naming the file (and the line/row/index where there is one), never load something else silently."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from omnissl_timeseries.data import timeseries_files, ucr_uea
from omnissl_timeseries.readers import read_npy, read_npz
from omnissl_timeseries.tsfile import read_ts

from omnissl.core.errors import DataError
from omnissl.core.paths import ALLOW_OUTSIDE_ENV

TS = "@problemName T\n@univariate true\n@equalLength false\n@classLabel true a b\n@data\n"


@pytest.fixture(autouse=True)
def _inside_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ALLOW_OUTSIDE_ENV, raising=False)


def write(root: Path, name: str, text: str) -> Path:
    (root / name).write_text(text, encoding="utf-8")
    return root / name


# ----------------------------------------------------------------------------------------------- F11: inf
@pytest.mark.parametrize("token", ["inf", "-Infinity", "1e39"])  # 1e39 is finite in float64, inf in float32
def test_inf_in_a_ts_value_names_file_line_and_position(tmp_path: Path, token: str) -> None:
    path = write(tmp_path, "x.ts", TS + "1,2,3:a\n" + f"4,{token},6:b\n")
    with pytest.raises(DataError, match=rf"x\.ts:7: channel 0, value 1: '{token}' is not finite"):
        read_ts(path)


def test_nan_in_a_ts_value_is_still_missing(tmp_path: Path) -> None:
    values, _ = read_ts(write(tmp_path, "x.ts", TS + "1,nan,3:a\n4,?,6:b\n")).padded()
    assert np.isnan(values[:, 0, 1]).all() and values[0, 0, 2] == 3


def test_inf_in_a_wide_or_long_csv_names_file_line_and_column(tmp_path: Path) -> None:
    write(tmp_path, "w.csv", "label,t0,t1\na,1,2\nb,inf,4\n")
    with pytest.raises(DataError, match=r"w\.csv:3: column 't0': 'inf' is not finite"):
        timeseries_files(train="w.csv", data_root=tmp_path)
    write(tmp_path, "l.csv", "id,time,v\ns,0,1\ns,1,-inf\n")
    with pytest.raises(DataError, match=r"l\.csv:3: column 'v': '-inf' is not finite"):
        timeseries_files(train="l.csv", csv_layout="long", data_root=tmp_path)


def test_inf_in_npz_and_npy_names_file_key_and_index(tmp_path: Path) -> None:
    x = np.zeros((3, 2, 4), np.float64)
    x[1, 0, 2] = np.inf
    np.savez(tmp_path / "a.npz", x=x, y=np.array([0, 1, 0]))
    with pytest.raises(DataError, match=r"a\.npz\['x'\]: index \(1, 0, 2\) holds inf"):
        timeseries_files(train="a.npz", data_root=tmp_path)
    x[1, 0, 2] = 1e300  # finite as float64, inf once float32
    np.save(tmp_path / "a.npy", x)
    with pytest.raises(DataError, match=r"a\.npy: index \(1, 0, 2\) holds 1e\+300"):
        read_npy(tmp_path / "a.npy", None)


# ----------------------------------------------------------------------------------------------- F12: corrupt npz
def good_npz(tmp_path: Path, *, compressed: bool = False) -> bytes:
    save = np.savez_compressed if compressed else np.savez
    save(tmp_path / "good.npz", x=np.random.default_rng(0).normal(size=(8, 1, 50)), y=np.arange(8) % 2)
    return (tmp_path / "good.npz").read_bytes()


def corruptions(tmp_path: Path) -> dict[str, bytes]:
    plain, packed = good_npz(tmp_path), good_npz(tmp_path, compressed=True)
    middle = len(plain) // 2
    return {"half": plain[: len(plain) // 2], "last30": plain[:-30], "empty": b"",
            "overwritten": plain[:middle] + b"\x00" * 100 + plain[middle + 100:],
            "compressed": packed[:200] + b"\x00" * 64 + packed[264:]}


@pytest.mark.parametrize("case", ["half", "last30", "empty", "overwritten", "compressed"])
def test_corrupt_npz_is_a_data_error_naming_the_file(tmp_path: Path, case: str) -> None:
    (tmp_path / "bad.npz").write_bytes(corruptions(tmp_path)[case])
    with pytest.raises(DataError, match=r"bad\.npz"):
        read_npz(tmp_path / "bad.npz", keys=("x", "y"))


def test_corrupt_npy_files_name_the_file(tmp_path: Path) -> None:
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "zip.npy").write_bytes(good_npz(tmp_path))  # an .npz renamed .npy: np.load returns an archive
    for name in ("empty.npy", "zip.npy"):
        with pytest.raises(DataError, match=rf"{name}"):
            read_npy(tmp_path / name, None)


def test_python_objects_are_refused_without_suggesting_an_unsafe_load(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match=r"obj\.npy.*refused") as error:
        read_npy(tmp_path / "obj.npy", None)
    assert "allow_pickle" not in str(error.value)


def test_complex_and_out_of_range_labels_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "c.npy", np.ones((2, 5), np.complex64))  # astype(float32) would drop the imaginary part
    with pytest.raises(DataError, match=r"c\.npy.*complex"):
        read_npy(tmp_path / "c.npy", None)
    np.savez(tmp_path / "l.npz", x=np.zeros((2, 5)), y=np.array([0, -3]))  # -1 means unlabelled; -3 means nothing
    with pytest.raises(DataError, match=r"l\.npz\['y'\].*-3"):
        read_npz(tmp_path / "l.npz", keys=("x", "y"))


# ----------------------------------------------------------------------------------------------- F17 / F18: CSV
def test_wide_csv_whose_last_row_lost_a_field_names_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, "w.csv", "label,t0,t1,t2\na,1,2,3\nb,4,5\n")
    with pytest.raises(DataError, match=r"w\.csv:3: 3 fields, the header has 4"):
        timeseries_files(train="w.csv", data_root=tmp_path)


def test_empty_cells_and_question_marks_stay_missing(tmp_path: Path) -> None:
    write(tmp_path, "w.csv", "label,t0,t1,t2\na,1,,3\n\nb,4,?,6\n")  # the blank line is skipped, not a row
    bundle = timeseries_files(train="w.csv", data_root=tmp_path)
    assert bundle.train.values.shape == (2, 1, 3) and bool(bundle.train.values[:, 0, 1].isnan().all())


def test_zero_byte_and_duplicate_header_csv_name_the_file(tmp_path: Path) -> None:
    write(tmp_path, "e.csv", "")
    with pytest.raises(DataError, match=r"e\.csv: empty file"):
        timeseries_files(train="e.csv", data_root=tmp_path)
    write(tmp_path, "d.csv", "id,time,v,v\ns,0,1,2\n")
    with pytest.raises(DataError, match=r"d\.csv:1: column 'v' appears 2 times"):
        timeseries_files(train="d.csv", csv_layout="long", data_root=tmp_path)


def test_test_split_errors_name_the_test_file(tmp_path: Path) -> None:
    write(tmp_path, "train.csv", "label,t0,t1\na,1,2\nb,3,4\n")
    write(tmp_path, "test.csv", "label,t0,t1\na,?,?\n")
    with pytest.raises(DataError, match=r"test\.csv \(test\): series 0 has no observed value"):
        timeseries_files(train="train.csv", test="test.csv", data_root=tmp_path)


# ----------------------------------------------------------------------------------------------- F15: paths
@pytest.mark.parametrize("key", ["train", "test", "train_labels", "test_labels"])
def test_every_file_parameter_stays_inside_the_data_root(tmp_path: Path, key: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    np.save(root / "x.npy", np.ones((2, 5), np.float32))
    np.save(tmp_path / "outside.npy", np.zeros(2, np.int64))
    params = {"train": "x.npy", "data_root": root, key: "../outside.npy"}
    with pytest.raises(DataError, match=rf"data\.{key}: path '\.\./outside\.npy' leaves the data root"):
        timeseries_files(**params)


def test_ucr_uea_folder_and_dataset_stay_inside_the_data_root(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "Evil").mkdir()
    with pytest.raises(DataError, match=r"data\.dataset: path .* leaves the data root"):
        ucr_uea(dataset="../../Evil", data_root=tmp_path / "root")
    with pytest.raises(DataError, match=r"data\.folder: path .* leaves the data root"):
        ucr_uea(dataset="Evil", folder="..", data_root=tmp_path / "root")


def test_ucr_npz_labels_must_index_the_class_labels(tmp_path: Path) -> None:
    base = tmp_path / "timeseries" / "T"
    base.mkdir(parents=True)
    x = np.zeros((2, 1, 5), np.float32)
    np.savez(base / "T.npz", X_train=x, y_train=np.array([0, 2]), X_test=x, y_test=np.array([0, 1]),
             class_labels=np.array(["a", "b"]))
    with pytest.raises(DataError, match=r"T\.npz\['y_train'\]: label 2 .* 2 class labels"):
        ucr_uea(dataset="T", source="npz", data_root=tmp_path)
    assert zipfile.is_zipfile(base / "T.npz")


def test_an_npy_whose_header_bytes_were_overwritten_is_a_data_error(tmp_path: Path) -> None:
    # Found by tests/fuzz: one zeroed byte inside the header dict makes numpy's header parser raise
    # tokenize.TokenError, which used to escape as a raw traceback.
    path = tmp_path / "x.npy"
    np.save(path, np.zeros((3, 2, 4), np.float32))
    data = bytearray(path.read_bytes())
    data[68] = 0
    path.write_bytes(bytes(data[:128]))
    with pytest.raises(DataError, match=r"x\.npy"):
        timeseries_files(train="x.npy", train_labels=None, data_root=tmp_path)
