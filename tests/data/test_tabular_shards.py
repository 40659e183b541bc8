"""Tabular rows in Parquet shards (issue 19): a table → ``omnissl shard`` → ``parquet_shards`` gives the rows the
in-memory dataset gives (same schema, fixed in the manifest at shard time), and a bad cell names shard, row
(the key) and column."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from omnissl.core.config import Component
from omnissl.core.errors import DataError
from omnissl.core.instantiate import build_component
from omnissl.core.registry import DATASETS, load_plugins
from tests.data.shardkit import table_shards

FIELDS = {"x": "tabular"}


def _build(root: Path, **spec: object) -> object:
    load_plugins()
    return build_component(DATASETS, Component(**spec), "data", {"data_root": root, "seed": 0})


def _assert_rows_equal(memory: object, shards: object) -> int:
    """Every shard row (train by random access, test) equals the in-memory row its key names."""
    compared = 0
    for split in ("train", "test"):
        mine, theirs = getattr(memory, split), getattr(shards, split)
        reader = theirs.random_access if split == "train" else theirs
        for i in range(len(reader)):
            key, _ = reader.index[i]
            row = int(key.rpartition("row")[2])
            numeric, categorical = reader[i]["x"]["x"]
            assert torch.equal(torch.from_numpy(numeric), mine.numeric[row]), (split, key)
            assert torch.equal(torch.from_numpy(categorical), mine.categorical[row]), (split, key)
            assert reader[i]["y"] == int(mine.labels[row])
            compared += 1
        assert len(reader) == len(mine)  # nothing dropped
    return compared


def test_adult_rows_round_trip_through_parquet_shards(data_root: Path, tmp_path: Path) -> None:
    params = {"max_train": 300, "max_test": 120}
    table_shards(data_root, tmp_path / "adult", shard_size=64, **params)
    manifest = json.loads((tmp_path / "adult" / "train" / "manifest.json").read_text())
    assert manifest["format"] == "parquet" and manifest["tabular_schema"]["target"] == "income"
    memory = _build(data_root, name="adult", **params)
    shards = _build(tmp_path, name="parquet_shards", shards="adult/train", test_shards="adult/test",
                    fields=FIELDS, label="cls")
    for key in ("num_numeric", "categorical_cardinalities", "num_features", "feature_names"):
        assert shards.input_spec[key] == memory.input_spec[key], key
    assert shards.class_names == memory.class_names and shards.num_classes == 2
    assert _assert_rows_equal(memory, shards) == 420
    # the training stream (what the trainer reads) decodes the same rows
    batch = next(iter(shards.train.loader(batch_size=32, seed=0, start_batch=0, num_workers=0)))
    assert batch["x"]["numeric"].shape == (32, memory.input_spec["num_numeric"]) and batch["y"].shape == (32,)
    raw = shards.raw_features(batch["x"])
    assert raw.shape == (32, memory.raw_features(memory.collate([memory.train[0]])["x"]).shape[1])


def _csv(tmp_path: Path) -> Path:
    frame = pd.DataFrame({"a": [1.5, None, 3.0, 4.25, 10.0, -2.0, 0.5, 7.0],
                          "b": ["x", "y", None, "x", "z", "y", "x", "z"],
                          "c": [3, 1, 4, 1, 5, 9, 2, 6],
                          "t": ["p", "q", "p", "q", "p", "q", "p", "q"]})
    path = tmp_path / "root" / "table.csv"
    path.parent.mkdir(parents=True)
    frame.to_csv(path, index=False)
    return path


def test_csv_rows_round_trip_with_missing_values(tmp_path: Path) -> None:
    _csv(tmp_path)
    root = tmp_path / "root"
    params = {"train": "table.csv", "target": "t", "test_fraction": 0.25}
    table_shards(root, tmp_path / "out", name="tabular_file", shard_size=2, **params)
    memory = _build(root, name="tabular_file", **params)
    assert memory.input_spec["num_numeric"] == 3  # a, c and a's missing indicator
    shards = _build(tmp_path, name="parquet_shards", shards="out/train", test_shards="out/test", fields=FIELDS)
    assert _assert_rows_equal(memory, shards) == 8


def _corrupt_cell(shard: Path, column: str, row: int, value: str) -> None:
    """Rewrite one cell as text, as another tool could, and re-sign the manifest (this is not a damaged file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pq.read_table(shard).to_pydict()
    table[column] = [str(v) if v is not None else None for v in table[column]]
    table[column][row] = value
    pq.write_table(pa.table(table), shard)
    manifest_path = shard.parent / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in manifest["shards"]:
        if entry["name"] == shard.name:
            entry["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    manifest_path.write_text(json.dumps(manifest))


def test_a_bad_cell_names_shard_row_and_column(tmp_path: Path) -> None:
    _csv(tmp_path)
    root = tmp_path / "root"
    table_shards(root, tmp_path / "out", name="tabular_file", shard_size=2, train="table.csv", target="t",
                 test_fraction=0.25)
    shard = tmp_path / "out" / "test" / "test-000000.parquet"
    _corrupt_cell(shard, "a", 1, "twelve")
    bundle = _build(tmp_path, name="parquet_shards", shards="out/train", test_shards="out/test", fields=FIELDS)
    key = bundle.test.index[1][0]
    bundle.test[0]  # the other row of that shard still reads
    with pytest.raises(DataError) as caught:
        bundle.test[1]
    message = str(caught.value)
    assert str(shard) in message and f"key '{key}'" in message and "column 'a'" in message and "'twelve'" in message
    skipping = _build(tmp_path, name="parquet_shards", shards="out/train", test_shards="out/test", fields=FIELDS,
                      on_error="skip")
    assert skipping.test[1] is None and skipping.test.decoder.skipped == 1  # skipped under the policy, counted


def test_infinite_cell_is_refused(tmp_path: Path) -> None:
    _csv(tmp_path)
    root = tmp_path / "root"
    table_shards(root, tmp_path / "out", name="tabular_file", shard_size=2, train="table.csv", target="t",
                 test_fraction=0.25)
    shard = tmp_path / "out" / "test" / "test-000000.parquet"
    _corrupt_cell(shard, "c", 0, "inf")
    bundle = _build(tmp_path, name="parquet_shards", shards="out/train", test_shards="out/test", fields=FIELDS)
    with pytest.raises(DataError, match=r"column 'c'.*infinite"):
        bundle.test[0]


def test_shards_without_a_schema_are_refused(data_root: Path, tmp_path: Path) -> None:
    from tests.data.shardkit import mnist_shards

    mnist_shards(data_root, tmp_path, format="parquet", captions=False)
    with pytest.raises(Exception, match="tabular_schema"):
        _build(tmp_path, name="parquet_shards", fields=FIELDS, shards="train")


def test_synthetic_tabular_shards_build() -> None:
    load_plugins()
    bundle = build_component(DATASETS, Component(name="parquet_shards", shards="x", fields=FIELDS, label="cls"),
                             "data", {"data_root": Path("."), "seed": 0, "synthetic": 16})
    batch = bundle.collate([bundle.train[i] for i in range(8)])
    assert batch["x"]["numeric"].shape == (8, 6) and batch["x"]["categorical"].shape == (8, 8)
    assert "marginals" in bundle.input_spec
