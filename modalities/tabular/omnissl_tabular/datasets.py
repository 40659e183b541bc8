"""Registered tabular datasets: any CSV/Parquet file pair, UCI Adult (original files), scikit-learn bundled sets."""

from __future__ import annotations

import difflib
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from omnissl.core.errors import DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl_tabular.data import (
    FileFormat,
    bundle_from_frames,
    identity_of,
    read_table,
    seeded_split,
    subsample,
    synthetic_bundle,
)
from omnissl_tabular.schema import TabularSchema

ADULT_COLUMNS = ("age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
                 "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week", "native-country",
                 "income")
# Adult's real shape (6 numeric; 8 categorical incl. <unknown>/<missing>) so synthetic specs match the real ones.
_ADULT_NUMERIC = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}
ADULT_CARDINALITIES = (10, 18, 9, 16, 8, 7, 4, 43)


@DATASETS.register("tabular_file", modality="tabular", description="CSV/Parquet train (+test) file with a target")
def tabular_file(*, train: str, target: str, test: str | None = None, format: FileFormat = "auto",
                 id_columns: list[str] | None = None, categorical: list[str] | None = None,
                 numeric: list[str] | None = None, schema: str | None = None, test_fraction: float = 0.2,
                 separator: str = ",", data_root: Path = Path("."), synthetic: int | None = None,
                 seed: int = 0) -> DataBundle:
    """Paths (``train``, ``test``, ``schema``) are read inside the data root (:func:`omnissl.core.paths.resolve_data_path`:
    a shared recipe must not read any file the user can). Without ``test``, a stratified seeded split of
    ``test_fraction`` is held out. ``schema``: a saved schema JSON to apply instead of inferring one."""
    if synthetic is not None:
        return synthetic_bundle(synthetic, seed=seed)
    train_path = resolve_data_path(data_root, train, key="data.train")
    test_path = resolve_data_path(data_root, test, key="data.test") if test is not None else None
    schema_path = resolve_data_path(data_root, schema, key="data.schema") if schema else None
    options = {"sep": separator}
    train_frame = read_table(train_path, file_format=format, csv_options=options)
    paths = [train_path]
    if test_path is not None:
        test_frame = read_table(test_path, file_format=format, csv_options=options)
        paths.append(test_path)
        sources = (str(train_path), str(test_path))
    else:
        if target not in train_frame.columns:
            raise DataError(f"{train_path}: target column '{target}' not found; columns: {', '.join(map(str, train_frame.columns))}")
        train_frame, test_frame = seeded_split(train_frame, test_fraction=test_fraction, seed=seed, target=target)
        sources = (f"{train_path} (train part)", f"{train_path} (held-out {test_fraction:.0%})")
    fixed = TabularSchema.load(schema_path) if schema_path is not None else None
    settings = {"target": target, "id": id_columns, "cat": categorical, "num": numeric, "schema": schema,
                "split": None if test else [test_fraction, seed]}
    return bundle_from_frames(train_frame, test_frame, target=target, id_columns=id_columns or (),
                              categorical=categorical, numeric=numeric, schema=fixed,
                              cache_key=identity_of(paths, settings), description=f"{train} / {test or 'split'}",
                              train_source=sources[0], test_source=sources[1])


def read_adult(path: Path, *, test_file: bool) -> pd.DataFrame:
    """One original UCI file: no header, ', ' separators, '?' for missing; the test file opens with a comment
    line ('|1x3 Cross validator') and writes its labels with a trailing '.' ('<=50K.')."""
    if not path.is_file():
        raise DataError(f"Adult file not found: {path}")
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            first = handle.readline()
    except (OSError, UnicodeDecodeError, EOFError, zlib.error) as error:
        raise DataError(f"{path}: not a readable (gzipped) CSV file ({error})") from error
    skip = 1 if first.startswith("|") else 0
    if test_file and not skip:
        raise DataError(f"{path}: expected the test file's first comment line ('|1x3 Cross validator'), got {first[:40]!r}")
    frame = read_table(path, file_format="csv", csv_options={
        "header": None, "names": list(ADULT_COLUMNS), "skipinitialspace": True, "na_values": "?", "skiprows": skip,
        "dtype": {c: str for c in ADULT_COLUMNS if c not in _ADULT_NUMERIC}})
    _check_adult_numbers(frame, path, skip)
    labels = frame["income"].astype(str).str.strip().str.rstrip(".")
    bad = ~labels.isin(["<=50K", ">50K"])
    if bad.any():
        row = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"{path}: row {row + skip + 1}: income {frame['income'].iloc[row]!r} is not '<=50K' or '>50K' "
                        f"(a row with the wrong number of fields?)")
    frame["income"] = labels
    return frame


def _check_adult_numbers(frame: pd.DataFrame, path: Path, skip: int) -> None:
    """Text in a numeric attribute would silently make it a categorical feature (pandas reads the column as text)."""
    for name in sorted(_ADULT_NUMERIC):
        column = frame[name]
        if pd.api.types.is_numeric_dtype(column.dtype):
            continue
        bad = pd.to_numeric(column, errors="coerce").isna() & column.notna()
        row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
        raise DataError(f"{path}: row {row + skip + 1}: column '{name}' holds {column.iloc[row]!r}, not a number")


@DATASETS.register("adult", modality="tabular", description="UCI Adult / Census Income, official train/test split")
def adult(*, data_root: Path = Path("."), max_train: int | None = None, max_test: int | None = None,
          validation_fraction: float | None = None, synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """``data_root/adult/adult.data.gz`` (32,561 rows) and ``adult.test.gz`` (16,281 rows); target ``income``.
    ``max_train`` / ``max_test`` take fixed random subsets (tests, quick benchmarks); the schema is fitted on the
    train rows actually used. ``validation_fraction``: model selection — a stratified ``seed``-ed part of the train
    file becomes the evaluation split and the test file is not read (Adult has no official validation split)."""
    if synthetic is not None:
        return synthetic_bundle(synthetic, seed=seed, num_numeric=6, cardinalities=ADULT_CARDINALITIES)
    if validation_fraction is not None and not 0 < validation_fraction < 1:
        raise DataError(f"data.validation_fraction must lie in (0, 1), got {validation_fraction}")
    folder = data_root / "adult"
    paths = [folder / "adult.data.gz", folder / "adult.test.gz"]
    train = read_adult(paths[0], test_file=False)
    if validation_fraction is None:
        test, test_source = read_adult(paths[1], test_file=True), str(paths[1])
    else:
        paths = paths[:1]
        train, test = seeded_split(train, test_fraction=validation_fraction, seed=seed, target="income")
        test_source = f"{paths[0]} (held-out {validation_fraction:.0%} validation part)"
    train, test = subsample(train, max_train, seed=seed), subsample(test, max_test, seed=seed + 1)
    key = identity_of(paths, {"adult": 1, "max_train": max_train, "max_test": max_test, "seed": seed,
                              **({"validation": validation_fraction} if validation_fraction is not None else {})})
    return bundle_from_frames(train, test, target="income", cache_key=key,
                              description="UCI Adult" if validation_fraction is None else "UCI Adult (validation carve)",
                              train_source=str(paths[0]), test_source=test_source)


@DATASETS.register("sklearn_tabular", modality="tabular", description="scikit-learn bundled tables (offline demo)")
def sklearn_tabular(*, dataset: str = "breast_cancer", test_fraction: float = 0.25,
                    data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Any classification table that scikit-learn bundles, by the name of its ``load_<name>`` function
    (``breast_cancer``, ``wine``, ``iris``, ``digits``, …), with a seeded stratified split. ``data_root`` is unused:
    the tables ship inside scikit-learn (the ``fetch_*`` ones download, so they are not offered)."""
    if synthetic is not None:
        return synthetic_bundle(synthetic, seed=seed, num_numeric=8, cardinalities=())
    from sklearn import datasets as skd

    loaded = _load_sklearn_table(skd, dataset)
    train, test = seeded_split(loaded.frame, test_fraction=test_fraction, seed=seed, target="target")
    bundle = bundle_from_frames(train, test, target="target", description=f"scikit-learn {dataset}",
                                cache_key=f"sklearn-{dataset}-{test_fraction}-{seed}")
    # The target column holds 0, 1, …; scikit-learn ships what they mean ("malignant", "benign", …).
    if bundle.class_names is not None:
        bundle.class_names = [str(loaded.target_names[int(c)]) for c in bundle.class_names]
    return bundle


def _load_sklearn_table(skd: Any, dataset: str) -> Any:
    """``sklearn.datasets.load_<dataset>(as_frame=True)`` for a bundled classification table, else a DataError
    listing the ones that exist."""
    bundled = sorted(n[len("load_"):] for n in dir(skd) if n.startswith("load_") and n not in _NOT_TABLES)
    if dataset not in bundled:
        close = difflib.get_close_matches(dataset, bundled, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise DataError(f"data.dataset: scikit-learn bundles no table '{dataset}'{hint}; bundled: {', '.join(bundled)}")
    loaded = getattr(skd, f"load_{dataset}")(as_frame=True)
    if getattr(loaded, "target_names", None) is None:
        raise DataError(f"data.dataset: scikit-learn's '{dataset}' is a regression table (no classes); "
                        f"use a classification one")
    return loaded


# Loaders in sklearn.datasets that are not bundled tables (files, images, SVMlight readers, regression targets
# with several columns).
_NOT_TABLES = {"load_files", "load_sample_image", "load_sample_images", "load_svmlight_file", "load_svmlight_files",
               "load_linnerud"}
