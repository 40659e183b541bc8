"""Field codecs: how one member of a shard sample (``key.jpg``, ``key.flac``, ``key.txt``, ``key.cls``) becomes a
model input, and how a list of decoded values becomes a batch.

The core knows no modality, so plugins add their codecs here (``omnissl_image`` registers ``image`` for
``jpg/png/webp``, ``omnissl_speech`` ``audio`` for ``flac/wav``, ``omnissl_text`` ``text`` for ``txt``); the core
ships only ``label`` (``cls``: an integer class index). A recipe names the member by its extension
(``fields: {image: jpg, text: txt}``) and may pass options per field (``decode: {image: {image_size: 64}}``).
A codec is built once per dataset split (the text codec fits or loads its tokeniser there) and pickled into the
DataLoader workers, so ``decode`` runs in the workers.

A *row* codec (``row=True``, e.g. ``omnissl_tabular``'s ``tabular`` for Parquet table rows) decodes the whole
sample instead of one member: ``decode(row, where=)`` gets ``{column: value}`` (Parquet values as pyarrow gives
them: float, str, None …), its ``build`` also gets ``manifest=`` (the training shards' ``manifest.json``, where
encoding statistics fixed at shard time live) and its ``examples`` are whole rows. The recipe names it by its
extension (``fields: {x: tabular}``), which is no column of the shard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor

from omnissl.core.errors import ConfigError, DataError


class FieldCodec(Protocol):
    """``decode(data, where=)`` → one value (``where`` names shard, key and field for errors);
    ``collate(values)`` → the batch ``x`` of that field; ``input_spec`` fills builder parameters;
    ``synthetic(count, seed=)`` → ``count`` fake encoded members (bytes) for ``synthetic:`` runs and tests."""

    input_spec: dict[str, Any]

    def decode(self, data: bytes, *, where: str) -> Any: ...

    def collate(self, values: Sequence[Any]) -> Any: ...

    def synthetic(self, count: int, *, seed: int) -> list[bytes]: ...


@dataclass(frozen=True)
class CodecEntry:
    name: str
    extensions: tuple[str, ...]
    build: Callable[..., FieldCodec]  # keyword options from the recipe's ``decode.<field>`` + ``examples=`` (encoded members to fit on)
    row: bool = False  # decodes whole rows ({column: value}); build also gets manifest=


_CODECS: dict[str, CodecEntry] = {}


def register_codec(name: str, *, extensions: Sequence[str], build: Callable[..., FieldCodec], row: bool = False) -> None:
    """Make member extensions decodable; a second codec claiming an extension is an error, not an override."""
    for ext in extensions:
        for entry in _CODECS.values():
            if ext in entry.extensions and entry.name != name:
                raise ConfigError(f"codec '{name}': extension '.{ext}' is already decoded by '{entry.name}'")
    _CODECS[name] = CodecEntry(name=name, extensions=tuple(extensions), build=build, row=row)


def codec_for(extension: str, *, key: str) -> CodecEntry:
    """The codec that decodes ``.extension``; ``key`` is the recipe key path named when none does."""
    ext = extension.lower().lstrip(".")
    for entry in _CODECS.values():
        if ext in entry.extensions:
            return entry
    known = sorted(e for entry in _CODECS.values() for e in entry.extensions)
    raise ConfigError(f"{key}: no codec decodes '.{ext}' members (known: {', '.join(known)}; a plugin adds more — "
                      f"is it listed in the recipe's plugins?)")


class LabelCodec:
    """``.cls`` members: an ASCII integer class index (webdataset's convention) → int64 ``(B,)``."""

    def __init__(self) -> None:
        self.input_spec: dict[str, Any] = {}  # a label fills no builder parameter

    def decode(self, data: bytes, *, where: str) -> int:
        text = data.decode("utf-8", errors="replace").strip()
        try:
            value = int(text)
        except ValueError:
            raise DataError(f"{where}: class label {text[:40]!r} is not an integer") from None
        if value < 0:
            raise DataError(f"{where}: class label {value} is negative")
        return value

    def collate(self, values: Sequence[Any]) -> Tensor:
        return torch.as_tensor(list(values), dtype=torch.long)

    def synthetic(self, count: int, *, seed: int) -> list[bytes]:
        return [str(i % 10).encode() for i in range(count)]


def _label_codec(**options: Any) -> LabelCodec:
    if options.keys() - {"examples"}:
        raise ConfigError(f"data.decode: the label codec takes no options, got {sorted(options)}")
    return LabelCodec()


register_codec("label", extensions=("cls", "label", "index"), build=_label_codec)
