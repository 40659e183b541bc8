"""Tabular rows in Parquet shards: ``omnissl shard adult`` writes them, ``data: {name: parquet_shards, fields: {x:
tabular}}`` reads them.

Writing (:class:`ShardTable`): each row keeps its raw cells — numeric columns as float64 (null when missing),
categorical columns as their label text (null when missing) — plus ``cls``, the class index. The schema fitted on
the train split (numeric mean/std, categorical vocabularies, missing indicators, class order) goes into the
manifest of every split as ``tabular_schema``, so every worker and rank encodes with the same numbers, computed
once at shard time; the train split's missing/unknown counts go in as ``tabular_counts``.

Reading (:class:`TabularCodec`, a row codec: it decodes the whole row): exactly
:meth:`omnissl_tabular.schema.TabularSchema.transform` for one row — standardised numerics (missing → 0 and the
``<col>__missing`` indicator), categorical indices (missing → ``<missing>``, unseen → ``<unknown>``) — so a
shard row equals the in-memory dataset's row (tested). A cell that is not a number, ±inf, or outside float32
once standardised, and a row without a schema column, are :class:`DataError` s naming shard, key (the row) and
column. SCARF/VIME draw corruptions from the marginals of the first ``data.examples`` training rows (the rows are
shuffled at shard time), not of the whole split: holding every row would defeat streaming.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from omnissl.core.errors import ConfigError, DataError
from omnissl.data.codecs import register_codec
from omnissl_tabular.data import RawFeatures, TabularMarginals
from omnissl_tabular.schema import RESERVED, ColumnSpec, TabularSchema, _label_text

SCHEMA_KEY, COUNTS_KEY = "tabular_schema", "tabular_counts"
_F32_MAX = float(np.finfo(np.float32).max)


class ShardTable:
    """The raw cells of one split, as ``omnissl shard`` writes them: ``row(i) -> {column: float | str | None}``."""

    def __init__(self, frame: pd.DataFrame, schema: TabularSchema, labels: np.ndarray | None, *, source: str,
                 counts: dict[str, Any]) -> None:
        self.cells: dict[str, list[Any]] = {}
        for spec in schema.numeric_columns:
            values = pd.to_numeric(frame[spec.name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
            self.cells[spec.name] = [None if math.isnan(v) else float(v) for v in values.tolist()]
        for spec in schema.categorical_columns:
            column = frame[spec.name]
            texts = [None if missing else _label_text(v) for v, missing in zip(column.tolist(), column.isna())]
            empty = [i for i, t in enumerate(texts) if t == ""]
            if empty:  # a shard stores null and "" alike as an empty cell, i.e. missing: refuse rather than guess
                raise DataError(f"{source}: categorical column '{spec.name}' row {empty[0]} is blank text; "
                                f"shards read a blank cell as missing — fill or drop it first ({len(empty)} rows)")
            self.cells[spec.name] = texts
        self.labels = None if labels is None else labels.tolist()
        self.rows = len(frame)
        self.manifest = {SCHEMA_KEY: schema.to_json(), COUNTS_KEY: counts}

    def __len__(self) -> int:
        return self.rows

    def row(self, i: int) -> dict[str, Any]:
        cells = {name: values[i] for name, values in self.cells.items()}
        if self.labels is not None:
            cells["cls"] = str(self.labels[i])
        return cells


def _text(value: Any) -> str:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else "" if value is None else str(value)


class TabularCodec:
    """A Parquet row → ``(numeric (F_num,) float32, categorical (F_cat,) int64)``; batches →
    ``{"numeric": (B, F_num), "categorical": (B, F_cat)}`` as the in-memory tabular datasets give."""

    def __init__(self, schema: TabularSchema) -> None:
        self.schema = schema
        self.numeric = schema.numeric_columns
        self.categorical = schema.categorical_columns
        self.lookups = [{v: i + len(RESERVED) for i, v in enumerate(c.vocabulary)} for c in self.categorical]
        cards = schema.categorical_cardinalities
        self.raw_features = RawFeatures(cards)
        self.input_spec: dict[str, Any] = {
            "num_numeric": len(schema.numeric_feature_names), "categorical_cardinalities": cards,
            "num_features": len(schema.numeric_feature_names) + len(cards),
            "feature_names": tuple(schema.numeric_feature_names + [c.name for c in self.categorical])}

    def _cell(self, row: dict[str, Any], name: str, where: str) -> str:
        if name not in row:
            raise DataError(f"{where}: no column '{name}' (the manifest's tabular_schema has it; the row has "
                            f"{', '.join(sorted(row)) or 'nothing'})")
        return _text(row[name]).strip()

    def decode(self, row: dict[str, Any], *, where: str) -> tuple[np.ndarray, np.ndarray]:
        numbers, flags = [], []
        for spec in self.numeric:
            text = self._cell(row, spec.name, where)
            try:
                value = float(text) if text else math.nan
            except ValueError:
                raise DataError(f"{where} column '{spec.name}': {text[:40]!r} is not a number") from None
            if math.isinf(value):
                raise DataError(f"{where} column '{spec.name}': {value} — infinite values are refused")
            absent = math.isnan(value)
            standard = 0.0 if absent else (value - spec.mean) / spec.std
            if abs(standard) > _F32_MAX:
                raise DataError(f"{where} column '{spec.name}': {value} is outside the float32 range once "
                                f"standardised with the train mean/std")
            numbers.append(standard)
            if spec.missing_indicator:
                flags.append(1.0 if absent else 0.0)
        codes = []
        for spec, lookup in zip(self.categorical, self.lookups):
            text = self._cell(row, spec.name, where)
            codes.append(lookup.get(text, 0) if text else 1)  # 1 = <missing>, 0 = <unknown>
        return np.asarray(numbers + flags, dtype=np.float32), np.asarray(codes, dtype=np.int64)

    def collate(self, values: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[str, Tensor]:
        width = (len(self.schema.numeric_feature_names), len(self.categorical))
        numeric = np.stack([v[0] for v in values]) if values else np.zeros((0, width[0]), np.float32)
        categorical = np.stack([v[1] for v in values]) if values else np.zeros((0, width[1]), np.int64)
        return {"numeric": torch.from_numpy(numeric.reshape(len(values), width[0])),
                "categorical": torch.from_numpy(categorical.reshape(len(values), width[1]))}

    def synthetic(self, count: int, *, seed: int) -> list[dict[str, Any]]:
        """``count`` rows of this schema's columns, cells as a Parquet shard gives them (bytes)."""
        rng = np.random.default_rng(seed)
        rows = []
        for _ in range(count):
            row: dict[str, Any] = {c.name: repr(float(rng.normal(c.mean, c.std))).encode() for c in self.numeric}
            row.update({c.name: c.vocabulary[int(rng.integers(len(c.vocabulary)))].encode() for c in self.categorical})
            rows.append(row)
        return rows


def _synthetic_schema() -> TabularSchema:
    """Adult's shape (6 numeric, 8 categorical) for ``synthetic:`` runs, which have no manifest."""
    from omnissl_tabular.datasets import ADULT_CARDINALITIES

    columns = [ColumnSpec(f"n{i}", "numeric", "number", mean=1.0, std=2.0) for i in range(6)]
    columns += [ColumnSpec(f"c{j}", "categorical", "text", vocabulary=[f"v{v}" for v in range(c - len(RESERVED))])
                for j, c in enumerate(ADULT_CARDINALITIES)]
    return TabularSchema(target="y", columns=columns, classes=["0", "1"])


def build_tabular_codec(*, examples: Sequence[dict[str, Any]] = (),
                        manifest: dict[str, Any] | None = None) -> TabularCodec:
    """The schema from the training shards' manifest (``tabular_schema``, fixed by ``omnissl shard``); the
    corruption marginals from the decodable ``examples`` rows."""
    if manifest is None:
        codec = TabularCodec(_synthetic_schema())
    elif SCHEMA_KEY not in manifest:
        raise ConfigError(f"data.fields: these shards' manifest has no '{SCHEMA_KEY}' (the encoding fixed at shard "
                          f"time); write them with `omnissl shard <tabular dataset> --out DIR`")
    else:
        codec = TabularCodec(TabularSchema.from_json(manifest[SCHEMA_KEY], source=f"manifest {SCHEMA_KEY}"))
    rows = list(examples) or codec.synthetic(64, seed=0)
    decoded = []
    for i, row in enumerate(rows):
        try:
            decoded.append(codec.decode(row, where=f"example row {i}"))
        except DataError:
            continue  # only the marginals leave it out: reading that row still raises (or skips and counts)
    if not decoded:
        raise DataError(f"none of the first {len(rows)} training rows decodes; the shards are damaged")
    batch = codec.collate(decoded)
    codec.input_spec["marginals"] = TabularMarginals(batch["numeric"], batch["categorical"])
    return codec


register_codec("tabular", extensions=("tabular",), build=build_tabular_codec, row=True)
