"""Tabular data → tensors: file readers with format checks, an in-memory dataset, and the bundle builder.

A batch is ``{"x": {"numeric": (B, F_num) float32, "categorical": (B, F_cat) int64}, "y": (B,), "index": (B,)}``.
The schema (:mod:`omnissl_tabular.schema`) is fitted on the train split only and applied unchanged to the test
split. Because a dataset builder cannot see the run directory, the fixed schema is written to a cache folder keyed
by the data's identity (paths, sizes, mtimes) and the settings — ``$OMNISSL_CACHE_DIR/tabular/<key>/schema.json``
(default ``~/.cache/omnissl``) — and its path is published as ``input_spec["schema_path"]`` and in the bundle
description; to reuse a fixed schema on new data, copy it into the data root and pass ``schema: <relative path>``
(recipe paths are read inside the data root; the cache path itself needs ``--allow-outside-data-root``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from omnissl.core.errors import DataError
from omnissl.core.types import DataBundle
from omnissl.data.shard_sources import rows_wanted
from omnissl.data.tensors import TensorRows, collate_rows
from omnissl_tabular.checks import check_columns_unique, check_has_rows, check_no_inf, first_csv_line
from omnissl_tabular.schema import TabularSchema, Transformed

log = logging.getLogger("omnissl.tabular")
FileFormat = Literal["auto", "csv", "parquet"]
_PARQUET_MAGIC = b"PAR1"


class TabularDataset(TensorRows):
    """Numeric ``(N, F_num)`` float32, categorical ``(N, F_cat)`` int64, labels ``(N,)``: the shared
    :class:`TensorRows` with ``x = {"numeric", "categorical"}``."""

    def __init__(self, numeric: Tensor, categorical: Tensor, labels: Tensor, *, source: str = "") -> None:
        super().__init__({"numeric": numeric.float(), "categorical": categorical.long()}, labels, source=source)

    @property
    def numeric(self) -> Tensor:
        return self.x["numeric"]  # type: ignore[index]

    @property
    def categorical(self) -> Tensor:
        return self.x["categorical"]  # type: ignore[index]


collate_tabular = collate_rows


class RawFeatures:
    """The raw-feature baseline: standardised numerics (+ missing flags) and one-hot categoricals, ``(B, F_raw)``."""

    def __init__(self, cardinalities: Sequence[int]) -> None:
        self.cardinalities = tuple(cardinalities)

    def __call__(self, x: dict[str, Tensor]) -> Tensor:
        parts = [x["numeric"].float()]
        for j, size in enumerate(self.cardinalities):
            parts.append(torch.nn.functional.one_hot(x["categorical"][:, j], size).float())
        return torch.cat(parts, dim=1)


class TabularMarginals:
    """The train split's values per feature: SCARF/VIME draw corruption values from these empirical marginals.

    Holds ``numeric (N, F_num)`` and ``categorical (N, F_cat)``; ``sample(batch, device)`` returns, for every cell
    of a ``(batch, F)`` table, the value of that column in an independently, uniformly chosen train row.
    """

    def __init__(self, numeric: Tensor, categorical: Tensor) -> None:
        self.numeric, self.categorical = numeric.float(), categorical.long()
        self._on: dict[str, tuple[Tensor, Tensor]] = {}

    def __len__(self) -> int:
        return self.numeric.shape[0]

    def tables(self, device: torch.device) -> tuple[Tensor, Tensor]:
        key = str(device)
        if key not in self._on:  # one copy per device, made once
            self._on[key] = (self.numeric.to(device), self.categorical.to(device))
        return self._on[key]

    def sample(self, batch: int, device: torch.device) -> dict[str, Tensor]:
        numeric, categorical = self.tables(device)
        n = numeric.shape[0]
        rows_n = torch.randint(0, n, (batch, numeric.shape[1]), device=device)
        rows_c = torch.randint(0, n, (batch, categorical.shape[1]), device=device)
        cols_n = torch.arange(numeric.shape[1], device=device).expand(batch, -1)
        cols_c = torch.arange(categorical.shape[1], device=device).expand(batch, -1)
        return {"numeric": numeric[rows_n, cols_n], "categorical": categorical[rows_c, cols_c]}


# --------------------------------------------------------------------------------------------- reading files
def read_table(path: Path, *, file_format: FileFormat = "auto", csv_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """Read a CSV (optionally .gz) or Parquet file; a file that is not the declared format is a :class:`DataError`,
    and so are duplicate column names, a file without rows and ±inf cells (:mod:`omnissl_tabular.checks`)."""
    frame = _read_any(path, file_format=file_format, csv_options=csv_options or {})
    check_has_rows(frame=frame, source=str(path))
    check_no_inf(frame=frame, source=str(path), first_line=first_csv_line(csv_options or {})
                 if _format_of(path, file_format) == "csv" else None)
    return frame


def _format_of(path: Path, file_format: FileFormat) -> str:
    if file_format != "auto":
        return file_format
    return "parquet" if path.name.lower().endswith((".parquet", ".pq")) else "csv"


def _read_any(path: Path, *, file_format: FileFormat, csv_options: dict[str, Any]) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"table file not found: {path}")
    fmt = _format_of(path, file_format)
    with open(path, "rb") as handle:
        head = handle.read(4)
    if fmt == "parquet":
        if head != _PARQUET_MAGIC:
            raise DataError(f"{path}: declared Parquet but the file does not start with the Parquet magic bytes")
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several types for corrupt files
            raise DataError(f"{path}: not a readable Parquet file ({error})") from error
        check_columns_unique(columns=frame.columns, source=str(path))
        return frame
    if head == _PARQUET_MAGIC:
        raise DataError(f"{path}: declared CSV but this is a Parquet file (set format: parquet)")
    unreadable = (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError, EOFError, zlib.error)
    try:
        frame = pd.read_csv(path, **csv_options)
        if "names" not in csv_options and csv_options.get("header", "infer") is not None:
            # pandas renames a repeated header name 'a' to 'a.1' (no option turns that off): read the raw names
            header = pd.read_csv(path, **{**csv_options, "header": None, "nrows": 1, "dtype": str,
                                          "keep_default_na": False})
            check_columns_unique(columns=header.iloc[0].tolist() if len(header) else [], source=str(path))
    except unreadable as error:
        raise DataError(f"{path}: not a readable CSV file ({type(error).__name__}: {error})") from error
    return frame


def _cache_dir() -> Path:
    return Path(os.environ.get("OMNISSL_CACHE_DIR", Path.home() / ".cache" / "omnissl")) / "tabular"


def identity_of(paths: Sequence[Path], settings: dict[str, Any]) -> str:
    """A key for the data + settings: file paths, sizes and mtimes (not contents: cheap for large files)."""
    parts: list[Any] = [settings]
    for path in paths:
        stat = path.stat()
        parts.append([str(path.resolve()), stat.st_size, int(stat.st_mtime)])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------------- bundles
def dataset_from(t: Transformed, source: str) -> TabularDataset:
    labels = torch.from_numpy(t.y) if t.y is not None else torch.full((len(t.numeric),), -1, dtype=torch.long)
    return TabularDataset(torch.from_numpy(t.numeric), torch.from_numpy(t.categorical), labels, source=source)


def bundle_from_frames(train: pd.DataFrame, test: pd.DataFrame | None, *, target: str,
                       id_columns: Sequence[str] = (), categorical: Sequence[str] | None = None,
                       numeric: Sequence[str] | None = None, schema: TabularSchema | None = None,
                       cache_key: str | None = None, description: str = "", train_source: str = "train",
                       test_source: str = "test") -> DataBundle:
    """Fit (or reuse) the schema on ``train``, apply it to both splits, save it, and publish the input spec."""
    check_has_rows(frame=train, source=train_source)
    if test is not None:  # an empty test split would only fail at evaluation, after the whole training run
        check_has_rows(frame=test, source=test_source)
    if schema is None:
        schema = TabularSchema.infer(train, target=target, source=train_source, id_columns=id_columns,
                                     categorical=categorical, numeric=numeric)
    elif schema.target != target:
        raise DataError(f"schema target '{schema.target}' differs from the requested target '{target}'")
    fitted = schema.transform(train, source=train_source)
    tested = schema.transform(test, source=test_source) if test is not None else None
    counts = {"train": {"rows": len(train), "missing": fitted.missing, "unknown": fitted.unknown}}
    if tested is not None and test is not None:
        counts["test"] = {"rows": len(test), "missing": tested.missing, "unknown": tested.unknown}
    for split, info in counts.items():
        filled = {k: v for k, v in info["missing"].items() if v}
        unseen = {k: v for k, v in info["unknown"].items() if v}
        # WARNING when anything was filled, so it shows even where no logging is configured (the CLI)
        log.log(logging.WARNING if filled or unseen else logging.INFO,
                "tabular %s: %d rows kept (none dropped); missing values filled per column: %s; unseen categories "
                "(→ <unknown>): %s", split, info["rows"], filled or "none", unseen or "none")
    key = cache_key or schema.fingerprint()
    folder = _cache_dir() / key
    schema_path = schema.save(folder / "schema.json")
    (folder / "counts.json").write_text(json.dumps(counts, indent=2), encoding="utf-8")
    train_set = dataset_from(fitted, train_source)
    test_set = dataset_from(tested, test_source) if tested is not None else None
    if rows_wanted():  # `omnissl shard` writes the raw cells + this schema (kept only then: it is the frame again)
        from omnissl_tabular.shards import ShardTable

        train_set.shard_table = ShardTable(train, schema, fitted.y, source=train_source, counts=counts)  # type: ignore[attr-defined]
        if test_set is not None and test is not None and tested is not None:
            test_set.shard_table = ShardTable(test, schema, tested.y, source=test_source, counts=counts)  # type: ignore[attr-defined]
    bundle = make_bundle(schema, train_set, test_set, description=f"{description} (schema: {schema_path})",
                         extra={"schema_path": str(schema_path), "missing_counts": counts})
    bundle.artifacts = {"schema.json": Path(schema_path), "counts.json": folder / "counts.json"}
    return bundle


def make_bundle(schema: TabularSchema, train: TabularDataset, test: TabularDataset | None, *, description: str,
                extra: dict[str, Any] | None = None) -> DataBundle:
    cards = schema.categorical_cardinalities
    num_numeric = len(schema.numeric_feature_names)
    classes = len(schema.classes) or None
    spec: dict[str, Any] = {
        "num_numeric": num_numeric, "categorical_cardinalities": cards, "num_features": num_numeric + len(cards),
        "marginals": TabularMarginals(train.numeric, train.categorical),
        "feature_names": tuple(schema.numeric_feature_names + [c.name for c in schema.categorical_columns]),
        **(extra or {}),
    }
    if classes is not None:
        spec["num_classes"] = classes
        spec["class_names"] = tuple(schema.classes)
    return DataBundle(train=train, test=test, collate=collate_tabular, num_classes=classes, input_spec=spec,
                      raw_features=RawFeatures(cards), description=description,
                      class_names=list(schema.classes) if classes is not None else None)


def synthetic_bundle(count: int, *, seed: int, num_numeric: int = 6, cardinalities: Sequence[int] = (5, 4, 9),
                     num_classes: int = 2) -> DataBundle:
    """``count`` fake rows of the right structure, no files touched (``omnissl validate``, registry tests)."""
    generator = torch.Generator().manual_seed(seed)
    numeric = torch.randn(count, num_numeric, generator=generator)
    columns_c = [torch.randint(0, c, (count,), generator=generator) for c in cardinalities]
    categorical = torch.stack(columns_c, dim=1) if columns_c else torch.zeros(count, 0, dtype=torch.long)
    labels = torch.arange(count) % num_classes
    from omnissl_tabular.schema import ColumnSpec  # local: only the fake schema needs it

    columns = [ColumnSpec(f"n{i}", "numeric", "number") for i in range(num_numeric)]
    columns += [ColumnSpec(f"c{j}", "categorical", "text", vocabulary=[str(v) for v in range(c - 2)])
                for j, c in enumerate(cardinalities)]
    schema = TabularSchema(target="y", columns=columns, classes=[str(c) for c in range(num_classes)])
    fake = TabularDataset(numeric, categorical, labels, source="synthetic")
    return make_bundle(schema, fake, fake, description="synthetic tabular")


def seeded_split(frame: pd.DataFrame, *, test_fraction: float, seed: int, target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A fixed split stratified by the target, so both splits see every class."""
    rng = np.random.default_rng(seed)
    test_rows: list[int] = []
    for _, group in frame.groupby(target, sort=True).indices.items():
        members = rng.permutation(group)
        test_rows.extend(members[: int(round(len(members) * test_fraction))].tolist())
    is_test = np.zeros(len(frame), dtype=bool)
    is_test[test_rows] = True
    return frame[~is_test].reset_index(drop=True), frame[is_test].reset_index(drop=True)


def subsample(frame: pd.DataFrame, limit: int | None, *, seed: int) -> pd.DataFrame:
    """A fixed random subset (used for fast tests and benchmarks; the limit is explicit in the recipe)."""
    if limit is None or limit >= len(frame):
        return frame
    rows = np.sort(np.random.default_rng(seed).permutation(len(frame))[:limit])
    return frame.iloc[rows].reset_index(drop=True)
