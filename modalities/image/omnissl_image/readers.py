"""Reading and checking image ``.npz`` files: every defect is a :class:`DataError` naming the file.

An audit (F12, F13) found corrupt archives escaping as ``zipfile.BadZipFile`` / ``EOFError`` / ``zlib.error``
tracebacks, and labels that were never checked: ``3.7`` truncated to 3, ``-1`` or ``9`` with three classes crashing
evaluation after training, a test file of another shape crashing the first convolution, and test labels that
train never has giving a silent 0 %. These checks run at load time, before any training.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from omnissl.core.errors import DataError


def _why_unreadable(error: BaseException) -> str:
    # numpy's refusal advises loading with allow_pickle, which would run code from the file: do not relay it
    if "allow_pickle" in str(error):
        return "refused: it contains Python objects (pickled arrays), which are never loaded"
    return f"not a readable .npz file ({type(error).__name__}: {error})"


def load_arrays(*, path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The named arrays of ``path`` read in full (so zip CRCs are checked); any failure is a DataError."""
    if not path.is_file():
        raise DataError(f"image file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [name for name in names if name not in arrays.files]
            if missing:
                raise DataError(f"{path}: needs arrays {', '.join(map(repr, names))}, has "
                                f"{', '.join(arrays.files) or 'none'}")
            return {name: np.asarray(arrays[name]) for name in names}
    except DataError:
        raise
    except Exception as error:  # BadZipFile, EOFError, zlib.error, bad CRC, absurd headers (MemoryError) …
        raise DataError(f"{path}: {_why_unreadable(error)}") from error


def integer_labels(*, y: np.ndarray, path: Path, num_classes: int | None) -> Tensor:
    """``y (N,)`` as int64 class indices; non-integral, negative or ``>= num_classes`` values name their row.

    Integral floats (``2.0``) are accepted as they are exactly a class index; anything else would be guessed.
    """
    if y.dtype.kind not in "biuf":
        raise DataError(f"{path}: 'y' must hold integer class indices, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        # beyond 2**53 a float no longer names one integer, and the int64 cast would wrap
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)) | (np.abs(y) > 2.0**53))
        if bad.size:
            raise DataError(f"{path}: 'y' row {bad[0]} is {y[bad[0]]}, not an integer class index "
                            f"({bad.size} such rows)")
    if y.size and y.dtype.kind == "u" and int(y.max()) > np.iinfo(np.int64).max:
        raise DataError(f"{path}: 'y' holds {y.max()}, too large for a class index")
    labels = y.astype(np.int64)
    negative = np.flatnonzero(labels < 0)
    if negative.size:
        raise DataError(f"{path}: 'y' row {negative[0]} is {labels[negative[0]]}; class indices start at 0 "
                        f"({negative.size} negative rows)")
    if num_classes is not None:
        above = np.flatnonzero(labels >= num_classes)
        if above.size:
            raise DataError(f"{path}: 'y' row {above[0]} is {labels[above[0]]}, outside 0..{num_classes - 1} "
                            f"for num_classes={num_classes} ({above.size} such rows)")
    return torch.from_numpy(labels)


def read_npz(*, path: Path, num_classes: int | None = None) -> tuple[Tensor, Tensor]:
    """``x`` uint8 ``(N, H, W, C)`` or ``(N, H, W)``, ``y`` ``(N,)`` → tensors ``(N, C, H, W)``, ``(N,)``."""
    arrays = load_arrays(path=path, names=("x", "y"))
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.uint8:
        raise DataError(f"{path}: 'x' must be uint8, got {x.dtype}")
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise DataError(f"{path}: 'x' must be (N, H, W[, C]), got shape {x.shape}")
    if x.shape[0] == 0:
        raise DataError(f"{path}: no images ('x' has shape {x.shape})")
    if 0 in x.shape[1:]:
        raise DataError(f"{path}: 'x' images are empty, shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{path}: 'y' must be (N,) with N={len(x)}, got shape {y.shape}")
    labels = integer_labels(y=y, path=path, num_classes=num_classes)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), labels


def check_test_split(*, train_images: Tensor, train_labels: Tensor, train_path: Path, test_images: Tensor,
                     test_labels: Tensor, test_path: Path) -> None:
    """A test file must match train's ``(C, H, W)`` and use only labels that train has.

    A label with no training example can never be predicted by k-NN or a probe: its rows would score 0 without a
    word, so it is an error here rather than a number in a results table.
    """
    if tuple(test_images.shape[1:]) != tuple(train_images.shape[1:]):
        raise DataError(f"{test_path}: images are (C, H, W) = {tuple(test_images.shape[1:])}, but {train_path} "
                        f"has {tuple(train_images.shape[1:])}; both splits must have one layout")
    unseen = ~torch.isin(test_labels, train_labels.unique())
    if unseen.any():
        values = sorted(set(test_labels[unseen].tolist()))
        raise DataError(f"{test_path}: {int(unseen.sum())} rows have labels {values[:10]} that do not occur in "
                        f"the train file {train_path}")
