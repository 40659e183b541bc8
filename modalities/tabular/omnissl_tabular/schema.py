"""A tabular schema inferred once on the train split, then fixed (saved as JSON) and applied to every split.

Per column it records the role (numeric / categorical), the raw value kind seen in train (``number`` / ``text``
/ ``bool``, used to catch a column whose type changes between splits), train-only statistics (mean/std for
numerics, the vocabulary for categoricals) and how many values were missing. Missing values are never dropped:

- numeric: filled with the train mean (0 after standardisation) and, when the column had missing values in train,
  flagged by an extra ``<col>__missing`` 0/1 numeric feature (Little & Rubin's indicator method);
- categorical: mapped to a dedicated ``<missing>`` category (index 1); categories unseen in train go to the
  ``<unknown>`` bucket (index 0).

:meth:`TabularSchema.transform` returns ``numeric (N, F_num) float32``, ``categorical (N, F_cat) int64``,
``y (N,) int64`` and the per-column missing counts, so the caller can log them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import pandas as pd

from omnissl.core.errors import DataError
from omnissl_tabular.checks import check_columns_unique, check_has_rows, check_schema_json

UNKNOWN, MISSING = "<unknown>", "<missing>"
RESERVED = (UNKNOWN, MISSING)  # categorical indices 0 and 1
SCHEMA_VERSION = 1
ValueKind = Literal["number", "text", "bool", "empty"]


def value_kind(column: pd.Series) -> ValueKind:
    """The raw kind of a column's non-missing values (what pandas parsed)."""
    values = column.dropna()
    if values.empty:
        return "empty"
    if pd.api.types.is_bool_dtype(values) or all(isinstance(v, (bool, np.bool_)) for v in values.head(1000)):
        return "bool"
    if pd.api.types.is_numeric_dtype(values):
        return "number"
    # object columns holding only numbers (e.g. a DataFrame built by hand) count as numbers
    if pd.to_numeric(values, errors="coerce").notna().all():
        return "number"
    return "text"


@dataclass
class ColumnSpec:
    """One input column. ``vocabulary`` excludes the two reserved entries (index = position + 2)."""

    name: str
    role: Literal["numeric", "categorical"]
    kind: ValueKind
    mean: float = 0.0
    std: float = 1.0
    vocabulary: list[str] = field(default_factory=list)
    train_missing: int = 0
    missing_indicator: bool = False

    @property
    def cardinality(self) -> int:
        return len(self.vocabulary) + len(RESERVED)


@dataclass
class Transformed:
    """One split after the schema: arrays plus the missing / unknown counts per column."""

    numeric: np.ndarray
    categorical: np.ndarray
    y: np.ndarray | None
    missing: dict[str, int]
    unknown: dict[str, int]


@dataclass
class TabularSchema:
    target: str | None
    columns: list[ColumnSpec]
    classes: list[str]
    ignored: list[str] = field(default_factory=list)
    version: int = SCHEMA_VERSION

    # ----------------------------------------------------------------- inference (train split only)
    @classmethod
    def infer(cls, frame: pd.DataFrame, *, target: str | None, source: str = "train",
              id_columns: Sequence[str] = (), categorical: Sequence[str] | None = None,
              numeric: Sequence[str] | None = None, max_categories: int = 1000) -> "TabularSchema":
        """Infer roles from pandas dtypes: numbers → numeric, text / bool → categorical (overridable by name)."""
        check_columns_unique(columns=frame.columns, source=source)
        check_has_rows(frame=frame, source=source)  # else an empty train reads as "every column entirely missing"
        if target is not None and target not in frame.columns:
            raise DataError(f"{source}: target column '{target}' not found; columns: {', '.join(map(str, frame.columns))}")
        for name in [*id_columns, *(categorical or ()), *(numeric or ())]:
            if name not in frame.columns:
                raise DataError(f"{source}: column '{name}' named in the settings is not in the data")
        forced_cat, forced_num = set(categorical or ()), set(numeric or ())
        if forced_cat & forced_num:
            raise DataError(f"{source}: columns {sorted(forced_cat & forced_num)} are declared both numeric and categorical")
        columns: list[ColumnSpec] = []
        for name in frame.columns:
            if name == target or name in id_columns:
                continue
            column = frame[name]
            kind = value_kind(column)
            if kind == "empty":
                raise DataError(f"{source}: column '{name}' is entirely missing (all NaN); drop it or name it an id column")
            missing = int(column.isna().sum())
            role = "categorical" if (name in forced_cat or (kind != "number" and name not in forced_num)) else "numeric"
            if role == "numeric":
                values = pd.to_numeric(column, errors="coerce")
                bad = values.isna() & column.notna()
                if bad.any():
                    row = int(np.flatnonzero(bad.to_numpy())[0])
                    raise DataError(f"{source}: column '{name}' declared numeric but row {row} holds {column.iloc[row]!r}")
                mean, std = _finite_statistics(values, name=str(name), source=source)
                columns.append(ColumnSpec(str(name), "numeric", kind, mean=mean,
                                          std=std if std > 1e-12 else 1.0, train_missing=missing,
                                          missing_indicator=missing > 0))
            else:
                vocab = sorted({_label_text(v) for v in column.dropna().unique()})
                if len(vocab) > max_categories:
                    raise DataError(f"{source}: categorical column '{name}' has {len(vocab)} distinct values "
                                    f"(> max_categories={max_categories}); is it an id column?")
                columns.append(ColumnSpec(str(name), "categorical", kind, vocabulary=vocab, train_missing=missing))
        if not columns:
            raise DataError(f"{source}: no input columns left after removing the target and id columns")
        classes: list[str] = []
        if target is not None:
            labels = frame[target]
            if labels.isna().any():
                row = int(np.flatnonzero(labels.isna().to_numpy())[0])
                raise DataError(f"{source}: target '{target}' is missing at row {row} "
                                f"({int(labels.isna().sum())} rows); rows are never dropped silently: clean them first")
            classes = sorted({_label_text(v) for v in labels.unique()})
        return cls(target=target, columns=columns, classes=classes, ignored=[str(c) for c in id_columns])

    # ----------------------------------------------------------------- application (any split)
    @property
    def numeric_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == "numeric"]

    @property
    def categorical_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == "categorical"]

    @property
    def numeric_feature_names(self) -> list[str]:
        """Standardised numerics first, then one 0/1 indicator per numeric column that had train missing values."""
        nums = self.numeric_columns
        return [c.name for c in nums] + [f"{c.name}__missing" for c in nums if c.missing_indicator]

    @property
    def categorical_cardinalities(self) -> tuple[int, ...]:
        return tuple(c.cardinality for c in self.categorical_columns)

    def transform(self, frame: pd.DataFrame, *, source: str = "data", require_target: bool = True) -> Transformed:
        """Apply the fixed schema; unseen categories → ``<unknown>``; errors name the file, column and row."""
        check_columns_unique(columns=frame.columns, source=source)
        absent = [c.name for c in self.columns if c.name not in frame.columns]
        if absent:
            raise DataError(f"{source}: columns {absent} of the schema are missing from this split")
        missing: dict[str, int] = {}
        unknown: dict[str, int] = {}
        nums, flags = [], []
        for spec in self.numeric_columns:
            column = frame[spec.name]
            self._check_kind(spec, column, source)
            values = pd.to_numeric(column, errors="coerce")
            bad = values.isna() & column.notna()
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"{source}: numeric column '{spec.name}' row {row} holds {column.iloc[row]!r}")
            absent_mask = values.isna().to_numpy()
            missing[spec.name] = int(absent_mask.sum())
            raw = values.to_numpy(dtype=np.float64, na_value=np.nan)
            standard = np.where(absent_mask, 0.0, (np.where(absent_mask, 0.0, raw) - spec.mean) / spec.std)
            _check_finite_cells(raw, standard, name=spec.name, source=source)
            nums.append(standard)  # fill = train mean, i.e. 0 once standardised
            if spec.missing_indicator:
                flags.append(absent_mask.astype(np.float64))
        cats = []
        for spec in self.categorical_columns:
            column = frame[spec.name]
            self._check_kind(spec, column, source)
            lookup = {v: i + len(RESERVED) for i, v in enumerate(spec.vocabulary)}
            absent_mask = column.isna().to_numpy()
            codes = np.array([1 if m else lookup.get(_label_text(v), 0) for v, m in zip(column.tolist(), absent_mask)],
                             dtype=np.int64)
            missing[spec.name] = int(absent_mask.sum())
            unknown[spec.name] = int((codes == 0).sum())
            cats.append(codes)
        n = len(frame)
        numeric = np.stack(nums + flags, axis=1).astype(np.float32) if nums else np.zeros((n, 0), np.float32)
        categorical = np.stack(cats, axis=1) if cats else np.zeros((n, 0), np.int64)
        return Transformed(numeric, categorical, self._labels(frame, source, require_target), missing, unknown)

    def _check_kind(self, spec: ColumnSpec, column: pd.Series, source: str) -> None:
        kind = value_kind(column)
        if kind != "empty" and kind != spec.kind:
            raise DataError(f"{source}: column '{spec.name}' holds {kind} values here but {spec.kind} values in the "
                            f"train split the schema was fitted on")

    def _labels(self, frame: pd.DataFrame, source: str, require_target: bool) -> np.ndarray | None:
        if self.target is None:
            return None
        if self.target not in frame.columns:
            if require_target:
                raise DataError(f"{source}: target column '{self.target}' not found")
            return None
        labels = frame[self.target]
        if labels.isna().any():
            row = int(np.flatnonzero(labels.isna().to_numpy())[0])
            raise DataError(f"{source}: target '{self.target}' is missing at row {row}")
        index = {c: i for i, c in enumerate(self.classes)}
        texts = [_label_text(v) for v in labels.tolist()]
        unseen = sorted({t for t in texts if t not in index})
        if unseen:
            raise DataError(f"{source}: target values {unseen[:5]} never occur in train (classes: {self.classes})")
        return np.array([index[t] for t in texts], dtype=np.int64)

    # ----------------------------------------------------------------- persistence
    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any], *, source: str = "schema") -> "TabularSchema":
        check_schema_json(raw=raw, source=source, version=SCHEMA_VERSION)
        try:
            columns = [ColumnSpec(**c) for c in raw["columns"]]
            return cls(target=raw["target"], columns=columns, classes=list(raw["classes"]),
                       ignored=list(raw.get("ignored", [])))
        except (KeyError, TypeError) as error:
            raise DataError(f"{source}: not a tabular schema ({error})") from error

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2), encoding="utf-8")
        tmp.replace(path)  # atomic: a concurrent reader never sees half a schema
        return path

    @classmethod
    def load(cls, path: Path) -> "TabularSchema":
        if not path.is_file():
            raise DataError(f"schema file not found: {path}")
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as error:
            raise DataError(f"{path}: not valid UTF-8 JSON ({type(error).__name__}: {error})") from error
        return cls.from_json(raw, source=str(path))

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.to_json(), sort_keys=True).encode()).hexdigest()[:16]


def _finite_statistics(values: pd.Series, *, name: str, source: str) -> tuple[float, float]:
    """Train mean and std of a numeric column; inf cells and statistics that overflow float64 are refused,
    because either would turn every standardised value of the column into NaN or 0."""
    raw = values.to_numpy(dtype=np.float64, na_value=np.nan)
    infinite = np.isinf(raw)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataError(f"{source}: column '{name}' row {row} holds {float(raw[row])!r}: infinite values are refused "
                        f"(NaN or an empty cell means missing)")
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(np.nanmean(raw)), float(np.nanstd(raw))
    if not (np.isfinite(mean) and np.isfinite(std)):
        raise DataError(f"{source}: column '{name}': values too large to standardise (mean {mean}, std {std}); "
                        f"rescale the column")
    return mean, std


def _check_finite_cells(raw: np.ndarray, standard: np.ndarray, *, name: str, source: str) -> None:
    """Refuse inf cells, and values whose standardised form does not fit the float32 tensors."""
    infinite = np.isinf(raw)
    if infinite.any():
        row = int(np.flatnonzero(infinite)[0])
        raise DataError(f"{source}: numeric column '{name}' row {row} holds {float(raw[row])!r}: "
                        f"infinite values are refused")
    with np.errstate(over="ignore"):  # the overflow is what we look for, reported below
        too_large = ~np.isfinite(standard.astype(np.float32))
    if too_large.any():
        row = int(np.flatnonzero(too_large)[0])
        raise DataError(f"{source}: numeric column '{name}' row {row} holds {float(raw[row])!r}, outside the float32 "
                        f"range once standardised with the train mean/std")


def _label_text(value: Any) -> str:
    """Labels and categories compare as text, so ``1`` (int in train) and ``1.0`` (float once a NaN is in the
    column) agree."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()
