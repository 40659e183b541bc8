"""Reader for the UCR/UEA ``.ts`` format (the sktime/aeon archive format).

Layout: ``#`` comment lines, then ``@tag value`` header lines (``@problemName``, ``@timeStamps``, ``@missing``,
``@univariate``, ``@dimensions``, ``@equalLength``, ``@seriesLength``, ``@classLabel true <labels…>`` or
``@targetLabel``), then ``@data`` and one case per line: the channels separated by ``:``, the values of a
channel by ``,`` (``?`` = missing → NaN), the class label last. Cases may have different lengths
(``@equalLength false``, e.g. JapaneseVowels): :meth:`TSFile.padded` pads them at the end with NaN and reports
the true lengths, so nothing is resampled or dropped behind the caller's back.

Every malformed input raises :class:`omnissl.core.errors.DataError` naming the file and the line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from omnissl.core.errors import DataError

_BOOL_TAGS = {"timestamps", "missing", "univariate", "equallength"}
_INT_TAGS = {"dimensions", "serieslength"}
_KNOWN_TAGS = _BOOL_TAGS | _INT_TAGS | {"problemname", "classlabel", "targetlabel", "data"}


@dataclass
class TSFile:
    """Parsed ``.ts`` content. ``series[i]``: float32 ``(C, L_i)``; ``labels[i]``: the label string."""

    path: Path
    series: list[np.ndarray]
    labels: list[str]
    class_labels: tuple[str, ...]
    header: dict[str, object] = field(default_factory=dict)

    @property
    def num_channels(self) -> int:
        return int(self.series[0].shape[0]) if self.series else 0

    @property
    def lengths(self) -> np.ndarray:
        return np.array([s.shape[1] for s in self.series], dtype=np.int64)

    def label_indices(self, class_labels: tuple[str, ...] | None = None) -> np.ndarray:
        """Labels as int64 indices into ``class_labels`` (the header's order by default)."""
        if not self.labels:  # @classLabel false: an unlabelled set (−1), fine for self-supervised training
            return np.full(len(self.series), -1, dtype=np.int64)
        order = class_labels if class_labels is not None else self.class_labels
        lookup = {label: i for i, label in enumerate(order)}
        out = np.empty(len(self.labels), dtype=np.int64)
        for row, label in enumerate(self.labels):
            if label not in lookup:
                raise DataError(f"{self.path}: case {row}: label '{label}' is not one of {list(order)}")
            out[row] = lookup[label]
        return out

    def padded(self, length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``(N, C, T)`` float32 with NaN after each series' end, and the true lengths ``(N,)``.

        ``length`` defaults to the longest series; a series longer than ``length`` is an error (never cut).
        """
        lengths = self.lengths
        target = int(lengths.max()) if length is None else int(length)
        if lengths.size and int(lengths.max()) > target:
            row = int(lengths.argmax())
            raise DataError(f"{self.path}: case {row} has length {lengths[row]} > the requested length {target}")
        out = np.full((len(self.series), self.num_channels, target), np.nan, dtype=np.float32)
        for i, values in enumerate(self.series):
            out[i, :, : values.shape[1]] = values
        return out, lengths


def _parse_bool(value: str, where: str) -> bool:
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise DataError(f"{where}: expected true or false, got '{value}'")
    return lowered == "true"


def _parse_header(tag: str, rest: str, where: str, header: dict[str, object]) -> None:
    key = tag.lower()
    if key not in _KNOWN_TAGS:
        raise DataError(f"{where}: unknown header tag '@{tag}'")
    if key in _BOOL_TAGS:
        header[key] = _parse_bool(rest, where)
    elif key in _INT_TAGS:
        try:
            header[key] = int(rest.strip())
        except ValueError:
            raise DataError(f"{where}: @{tag} needs an integer, got '{rest.strip()}'") from None
    elif key == "classlabel":
        parts = rest.split()
        if not parts:
            raise DataError(f"{where}: @classLabel needs 'true <labels…>' or 'false'")
        has_labels = _parse_bool(parts[0], where)
        if has_labels and len(parts) < 2:
            raise DataError(f"{where}: @classLabel true but no class labels listed")
        header["classlabel"] = has_labels
        header["class_labels"] = tuple(parts[1:])
    elif key == "targetlabel":
        header["targetlabel"] = _parse_bool(rest.split()[0] if rest.split() else "", where)
    elif key == "problemname":
        header["problemname"] = rest.strip()


def _parse_channel(text: str, where: str, channel: int) -> np.ndarray:
    text = text.strip()
    if not text:
        raise DataError(f"{where}: channel {channel} is empty")
    if text.startswith("("):
        raise DataError(f"{where}: timestamped values '(t,v)' are not supported; convert to @timeStamps false")
    values = []
    tokens = [token.strip() for token in text.split(",")]
    for position, token in enumerate(tokens):
        if token == "?":
            values.append(math.nan)
            continue
        try:
            values.append(float(token))
        except ValueError:
            raise DataError(f"{where}: channel {channel}, value {position}: '{token}' is not a number or '?'") from None
    with np.errstate(over="ignore"):  # a float64 beyond the float32 range becomes inf: refused just below
        out = np.asarray(values, dtype=np.float32)
    if np.isinf(out).any():  # NaN stays "missing" (checked against @missing); inf only poisons the loss later
        position = int(np.flatnonzero(np.isinf(out))[0])
        raise DataError(f"{where}: channel {channel}, value {position}: '{tokens[position]}' is not finite (inf, or "
                        f"beyond the float32 range); write '?' for a missing value")
    return out


def read_ts(path: str | Path) -> TSFile:
    """Parse a ``.ts`` file; see the module docstring for the format and the errors."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f".ts file not found: {path}")
    header: dict[str, object] = {}
    series: list[np.ndarray] = []
    labels: list[str] = []
    in_data = False
    with path.open("r", encoding="utf-8", errors="strict") as handle:
        try:
            lines = list(handle)
        except UnicodeDecodeError as error:
            raise DataError(f"{path}: not a UTF-8 text file ({error})") from None
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"{path}:{number}"
        if not line or line.startswith("#"):
            continue
        if not in_data:
            if not line.startswith("@"):
                raise DataError(f"{where}: expected a '@tag' header line or '@data' before the values")
            tag, _, rest = line[1:].partition(" ")
            _parse_header(tag, rest, where, header)
            in_data = tag.lower() == "data"
            continue
        if header.get("timestamps"):
            raise DataError(f"{where}: @timeStamps true is not supported")
        has_label = bool(header.get("classlabel")) or bool(header.get("targetlabel"))
        fields = line.split(":")
        if has_label:
            if len(fields) < 2 or not fields[-1].strip():
                raise DataError(f"{where}: label missing (the header declares class labels; expected "
                                f"'values:…:label')")
            label = fields[-1].strip()
            fields = fields[:-1]
            declared = header.get("class_labels") or ()
            if header.get("classlabel") and label not in declared:
                raise DataError(f"{where}: label '{label}' is not declared in @classLabel {list(declared)}")
            labels.append(label)
        channels = [_parse_channel(text, where, c) for c, text in enumerate(fields)]
        expected = header.get("dimensions") or (series[0].shape[0] if series else None)
        if header.get("univariate") and "dimensions" not in header:
            expected = 1
        if expected is not None and len(channels) != expected:
            raise DataError(f"{where}: {len(channels)} channels, expected {expected} (wrong number of dimensions)")
        longest = max(c.size for c in channels)
        case = np.full((len(channels), longest), np.nan, dtype=np.float32)
        for c, values in enumerate(channels):
            case[c, : values.size] = values  # channels of one case may end at different steps: pad with NaN
        if header.get("equallength") and "serieslength" in header and longest != header["serieslength"]:
            raise DataError(f"{where}: length {longest}, but the header declares @seriesLength "
                            f"{header['serieslength']} with @equalLength true")
        if header.get("missing") is False and any(np.isnan(c).any() for c in channels):
            raise DataError(f"{where}: '?' found but the header declares @missing false")
        series.append(case)
    if not in_data:
        raise DataError(f"{path}: no '@data' line (malformed header)")
    if not series:
        raise DataError(f"{path}: no cases after '@data'")
    class_labels = tuple(header.get("class_labels") or sorted(set(labels)))  # type: ignore[arg-type]
    return TSFile(path=path, series=series, labels=labels, class_labels=class_labels, header=header)
