"""Time-series datasets: UCR/UEA ``.ts`` files, ``.npz``/``.npy`` arrays and CSV (wide or long), all held in
memory as float32 ``(N, C, T)`` tensors.

Varying length (e.g. JapaneseVowels, 7–29 steps): by default (``variable_length: pad``) every series is padded
at the end with NaN to the longest length of train ∪ test; NaN is the padding mask the encoders and objectives
read (``isnan(x).all(channels)`` marks a padded step, TS2Vec's own convention). ``variable_length: resample``
instead stretches each series linearly to that length (no NaN). Missing values (``?``) are NaN as well.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor

from omnissl.core.errors import DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl.data.tensors import TensorRows, collate_rows
from omnissl_timeseries.readers import read_csv, read_npy, read_npz
from omnissl_timeseries.tsfile import read_ts

VariableLength = Literal["pad", "resample"]
Standardize = Literal["none", "channel", "multivariate"]
# (channels, length, classes, varying length) of the shipped archives, for synthetic stand-ins of the right shape.
KNOWN = {"GunPoint": (1, 150, 2, False), "ItalyPowerDemand": (1, 24, 2, False), "ArrowHead": (1, 251, 3, False),
         "BasicMotions": (6, 100, 4, False), "JapaneseVowels": (12, 29, 9, True)}


class TimeSeriesDataset(TensorRows):
    """float32 ``(N, C, T)`` (NaN = padding/missing) and int64 labels ``(N,)`` (−1 = unlabelled), shape-checked."""

    def __init__(self, values: Tensor, labels: Tensor, *, source: str = "") -> None:
        if values.ndim != 3:
            raise DataError(f"{source}: series must be (N, C, T), got shape {tuple(values.shape)}")
        if labels.shape != (values.shape[0],):
            raise DataError(f"{source}: {values.shape[0]} series but labels of shape {tuple(labels.shape)}")
        empty = torch.isnan(values).all(dim=(1, 2))
        if bool(empty.any()):
            raise DataError(f"{source}: series {int(empty.nonzero()[0])} has no observed value")
        super().__init__(values.float(), labels, source=source)

    @property
    def values(self) -> Tensor:
        return self.x  # type: ignore[return-value]


collate_series = collate_rows


def raw_series_features(x: Tensor) -> Tensor:
    """The raw-series baseline: ``(B, C, T)`` → ``(B, C·T)``, padding/missing (NaN) read as 0."""
    return torch.nan_to_num(x.float(), nan=0.0).reshape(x.shape[0], -1)


def valid_lengths(values: np.ndarray) -> np.ndarray:
    """Per series, one past the last step where any channel is observed."""
    observed = ~np.isnan(values).all(axis=1)  # (N, T)
    return np.where(observed.any(axis=1), values.shape[2] - np.argmax(observed[:, ::-1], axis=1), 0)


def fit_length(values: np.ndarray, length: int, mode: VariableLength) -> np.ndarray:
    """Bring ``(N, C, T)`` to ``length`` steps: NaN-pad at the end, or resample each series' valid part."""
    n, c, t = values.shape
    if mode == "pad" or t == 0:
        out = np.full((n, c, length), np.nan, dtype=np.float32)
        out[:, :, :t] = values
        return out
    out = np.empty((n, c, length), dtype=np.float32)
    for i, end in enumerate(valid_lengths(values)):
        source = np.linspace(0.0, 1.0, int(end))
        grid = np.linspace(0.0, 1.0, length)
        for ch in range(c):  # linear interpolation of the observed part onto the common grid
            out[i, ch] = np.interp(grid, source, values[i, ch, :end]) if end > 1 else values[i, ch, 0]
    return out


def standardize_channels(train: np.ndarray, test: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-channel z-score of ``(N, C, T)`` arrays with the **train** split's mean and (population) std over all
    its observed values, NaN kept, as the TS2Vec code's UEA loader does with sklearn's ``StandardScaler``; a
    constant channel keeps scale 1. The test split never contributes to the statistics."""
    mean = np.nanmean(train, axis=(0, 2), keepdims=True)
    std = np.nanstd(train, axis=(0, 2), keepdims=True)
    std = np.where(std > 0, std, 1.0)
    scale = lambda x: ((x - mean) / std).astype(np.float32)
    return scale(train), None if test is None else scale(test)


def make_bundle(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray] | None, *,
                class_names: tuple[str, ...] | None, variable_length: VariableLength, description: str,
                source: str, test_source: str | None = None) -> DataBundle:
    """Common length over both splits, tensors, and the input_spec (``in_channels``, ``seq_len``, ``num_classes``).
    ``source`` / ``test_source`` name the files in errors (the test split's own file when it has one)."""
    length = max(train[0].shape[2], test[0].shape[2] if test is not None else 0)
    train_x = torch.from_numpy(fit_length(train[0], length, variable_length))
    train_set = TimeSeriesDataset(train_x, torch.from_numpy(train[1]), source=f"{source} (train)")
    test_set = None
    if test is not None:
        test_source = test_source or source
        if test[0].shape[1] != train[0].shape[1]:
            raise DataError(f"{test_source}: test has {test[0].shape[1]} channels, train ({source}) has "
                            f"{train[0].shape[1]}")
        test_x = torch.from_numpy(fit_length(test[0], length, variable_length))
        test_set = TimeSeriesDataset(test_x, torch.from_numpy(test[1]), source=f"{test_source} (test)")
    labelled = train_set.labels[train_set.labels >= 0]
    num_classes = len(class_names) if class_names else (int(labelled.max()) + 1 if labelled.numel() else None)
    spec: dict[str, Any] = {"in_channels": int(train_x.shape[1]), "seq_len": int(length)}
    if num_classes is not None:
        spec["num_classes"] = num_classes
    if class_names:
        spec["class_names"] = tuple(class_names)
    return DataBundle(train=train_set, test=test_set, collate=collate_series, num_classes=num_classes,
                      input_spec=spec, raw_features=raw_series_features, description=description,
                      class_names=list(class_names) if class_names else None)


def synthetic_bundle(count: int, *, channels: int, length: int, num_classes: int, varying: bool,
                     seed: int, variable_length: VariableLength = "pad") -> DataBundle:
    """Noisy sines whose frequency depends on the class; with ``varying`` the lengths differ (NaN tails)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(count) % num_classes
    t = torch.linspace(0, 1, length)
    phase = torch.rand(count, channels, 1, generator=generator) * 6.28
    freq = (labels.float() + 1).view(-1, 1, 1) * (1 + torch.arange(channels).view(1, -1, 1) * 0.1)
    x = torch.sin(6.28 * freq * t + phase) + 0.1 * torch.randn(count, channels, length, generator=generator)
    x = x.numpy().astype(np.float32)
    if varying:
        ends = torch.randint(max(2, length // 4), length + 1, (count,), generator=generator).numpy()
        for i, end in enumerate(ends):
            x[i, :, end:] = np.nan
        x = fit_length(x, length, variable_length) if variable_length == "resample" else x
    pair = (x, labels.numpy().astype(np.int64))
    return make_bundle(pair, pair, class_names=None, variable_length=variable_length,
                       description=f"synthetic series ({channels}×{length}, {num_classes} classes)", source="synthetic")


@DATASETS.register("ucr_uea", modality="timeseries",
                   description="UCR/UEA archive set by name (GunPoint, JapaneseVowels, …), official train/test")
def ucr_uea(*, dataset: str = "GunPoint", source: Literal["ts", "npz"] = "ts",
            variable_length: VariableLength = "pad", standardize: Standardize = "none", folder: str = "timeseries",
            data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Reads ``<data_root>/<folder>/<dataset>/<dataset>_TRAIN.ts`` and ``_TEST.ts`` (or ``<dataset>.npz``).

    Labels are indices into the train file's ``@classLabel`` order (published in ``input_spec['class_names']``).
    ``standardize``: ``channel`` z-scores every channel with train statistics (:func:`standardize_channels`);
    ``multivariate`` does so only for sets of more than one channel, the TS2Vec code's rule (its UEA loader
    standardises, its UCR loader leaves the already z-normalised univariate series alone); ``none`` reads as is.
    """
    if synthetic is not None:
        channels, length, classes, varying = KNOWN.get(dataset, (1, 64, 2, False))
        return synthetic_bundle(synthetic, channels=channels, length=length, num_classes=classes, varying=varying,
                                seed=seed, variable_length=variable_length)
    resolve_data_path(data_root, folder, key="data.folder")  # checked on its own so the error names the right key
    base = resolve_data_path(data_root, Path(folder) / dataset, key="data.dataset")
    if not base.is_dir():
        parent = base.parent
        have = sorted(p.name for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []
        close = difflib.get_close_matches(dataset, have, n=1)
        raise DataError(f"data.dataset: no folder {base}" + (f" (did you mean '{close[0]}'?)" if close else "")
                        + f"; {parent} has: {', '.join(have) or 'nothing'}", missing_path=base)
    if source == "npz":
        path = base / f"{dataset}.npz"
        arrays = read_npz(path, keys=("X_train", "y_train", "X_test", "y_test", "class_labels"))
        names = _class_names(arrays, path)
        train_x, test_x = _standardized(arrays["X_train"], arrays["X_test"], standardize)
        return make_bundle((train_x, arrays["y_train"]), (test_x, arrays["y_test"]),
                           class_names=names, variable_length=variable_length, description=f"{dataset} (npz)",
                           source=str(path))
    train_file, test_file = read_ts(base / f"{dataset}_TRAIN.ts"), read_ts(base / f"{dataset}_TEST.ts")
    names = train_file.class_labels
    train_x, test_x = _standardized(train_file.padded()[0], test_file.padded()[0], standardize)
    train = (train_x, train_file.label_indices(names))
    test = (test_x, test_file.label_indices(names))
    return make_bundle(train, test, class_names=names, variable_length=variable_length,
                       description=f"{dataset} ({len(train[1])} train / {len(test[1])} test, official split)",
                       source=str(train_file.path), test_source=str(test_file.path))


def _standardized(train: np.ndarray, test: np.ndarray, mode: Standardize) -> tuple[np.ndarray, np.ndarray]:
    if mode == "none" or (mode == "multivariate" and train.shape[1] < 2):
        return train, test
    if train.shape[1] != test.shape[1]:  # make_bundle names the files for this mismatch; leave it to it
        return train, test
    out_train, out_test = standardize_channels(train, test)
    return out_train, out_test  # type: ignore[return-value]


def _class_names(arrays: dict[str, np.ndarray], path: Path) -> tuple[str, ...]:
    """The npz's ``class_labels``, which every label of both splits must index (else eval fails after training)."""
    labels = arrays["class_labels"]
    if labels.ndim != 1 or not labels.size:
        raise DataError(f"{path}['class_labels']: must be a non-empty 1-D array, got shape {labels.shape}")
    for key in ("y_train", "y_test"):
        too_big = arrays[key] >= labels.size
        if too_big.any():
            row = int(np.flatnonzero(too_big)[0])
            raise DataError(f"{path}['{key}']: label {int(arrays[key][row])} at index {row} is not an index into "
                            f"the {labels.size} class labels")
    return tuple(str(v) for v in labels)


def _load(path: Path, kind: str, *, labels: Path | None, csv_layout: str, label_column: str, id_column: str,
          time_column: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
    if kind == "ts":
        parsed = read_ts(path)
        return parsed.padded()[0], parsed.label_indices(), parsed.class_labels
    if kind == "npz":
        arrays = read_npz(path, keys=("x", "y"))
        return arrays["x"], arrays["y"], None
    if kind == "npy":
        return (*read_npy(path, labels), None)
    return read_csv(path, layout=csv_layout, label_column=label_column, id_column=id_column,  # type: ignore[arg-type]
                    time_column=time_column)


@DATASETS.register("timeseries_files", modality="timeseries",
                   description="series from .ts / .npz (x, y) / .npy (+ labels .npy) / CSV (wide or long) files")
def timeseries_files(*, train: str, test: str | None = None, format: Literal["auto", "ts", "npz", "npy", "csv"] = "auto",
                     train_labels: str | None = None, test_labels: str | None = None,
                     csv_layout: Literal["wide", "long"] = "wide", label_column: str = "label",
                     id_column: str = "id", time_column: str = "time", variable_length: VariableLength = "pad",
                     data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """Paths are read inside the data root (:func:`omnissl.core.paths.resolve_data_path`). ``.npz``: ``x``
    ``(N, C, T)`` or ``(N, T)`` and ``y``. ``.npy``: the array, with labels from ``*_labels`` (.npy) or unlabelled
    (−1). CSV wide: one row per univariate series (``label_column`` + value columns); long: ``id_column``,
    ``time_column``, optional ``label_column``, one column per channel. Every row must have the header's number
    of fields; ``?`` or an empty field is a missing value (NaN), ±inf is refused."""
    if synthetic is not None:
        return synthetic_bundle(synthetic, channels=1, length=64, num_classes=2, varying=False, seed=seed)
    options = {"csv_layout": csv_layout, "label_column": label_column, "id_column": id_column,
               "time_column": time_column}

    def load(path: Path, labels: Path | None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...] | None]:
        kind = format if format != "auto" else path.suffix.lower().lstrip(".")
        if kind not in ("ts", "npz", "npy", "csv"):
            raise DataError(f"{path}: cannot tell the format from the suffix '{path.suffix}'; set data.format")
        return _load(path, kind, labels=labels, **options)

    def resolve(value: str | None, key: str) -> Path | None:
        return resolve_data_path(data_root, value, key=f"data.{key}") if value is not None else None

    train_path, test_path = resolve_data_path(data_root, train, key="data.train"), resolve(test, "test")
    train_labels_path, test_labels_path = resolve(train_labels, "train_labels"), resolve(test_labels, "test_labels")
    train_x, train_y, names = load(train_path, train_labels_path)
    test_part = None
    if test_path is not None:
        test_x, test_y, test_names = load(test_path, test_labels_path)
        if names and test_names and test_names != names:  # re-index the test labels by the train order
            unknown = [n for n in test_names if n not in names]
            if unknown:
                raise DataError(f"{test_path}: labels {unknown} do not occur in the train file {train}")
            mapping = np.array([names.index(n) for n in test_names])
            test_y = np.where(test_y >= 0, mapping[np.maximum(test_y, 0)], -1)
        test_part = (test_x, test_y)
    return make_bundle((train_x, train_y), test_part, class_names=names, variable_length=variable_length,
                       description=f"{train} / {test}", source=str(train_path),
                       test_source=str(test_path) if test_path is not None else None)
