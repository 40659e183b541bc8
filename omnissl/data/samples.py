"""Shard samples → model inputs: each recipe field decoded by its codec, labels from ``cls``, batches collated.

``fields`` maps an input name to a member extension: one entry gives a plain batch (``x`` is that field's batch),
two or more give the paired form CLIP/SigLIP read (``x = {"image": …, "text": …}``). A sample missing a field, or
one a codec cannot decode (an undecodable JPEG, an empty clip), is a :class:`DataError` naming the shard, the key
and the field; under ``on_error: skip`` it is left out, counted, and every skip is logged with the running count.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from omnissl.core.errors import DataError
from omnissl.data.codecs import FieldCodec

log = logging.getLogger("omnissl.data")
OnError = Literal["raise", "skip"]


class SampleDecoder:
    """Decodes ``(key, {ext: bytes})`` into ``{"x": {name: value}, "y": label}``; picklable into workers."""

    def __init__(self, *, fields: dict[str, str], codecs: dict[str, FieldCodec], label: str | None,
                 label_codec: FieldCodec | None, on_error: OnError = "raise", row_fields: Sequence[str] = ()) -> None:
        self.fields, self.codecs = dict(fields), dict(codecs)
        self.row_fields = frozenset(row_fields)  # fields whose codec decodes the whole row (tabular)
        self.label, self.label_codec = label, label_codec
        self.on_error = on_error
        self.skipped = 0

    def decode(self, key: str, raw: dict[str, bytes], *, shard: str) -> dict[str, Any] | None:
        """The decoded sample, or ``None`` when it was skipped under ``on_error: skip``."""
        try:
            return self._decode(key, raw, shard=shard)
        except DataError as error:
            if self.on_error != "skip":
                raise
            self.skipped += 1
            log.warning("data.on_error=skip: skipped %s (%d skipped so far by this reader)", error, self.skipped)
            return None

    def _member(self, key: str, raw: dict[str, bytes], ext: str, *, name: str, shard: str) -> bytes:
        if ext not in raw:
            raise DataError(f"shard {shard}: key '{key}' has no field '{name}' (member .{ext}; it has "
                            f"{', '.join('.' + e for e in sorted(raw)) or 'nothing'})")
        return raw[ext]

    def _decode(self, key: str, raw: dict[str, bytes], *, shard: str) -> dict[str, Any]:
        x = {}
        for name, ext in self.fields.items():
            if name in self.row_fields:
                x[name] = self.codecs[name].decode(raw, where=f"shard {shard}: key '{key}'")
                continue
            data = self._member(key, raw, ext, name=name, shard=shard)
            x[name] = self.codecs[name].decode(data, where=f"shard {shard}: key '{key}' field '{name}' (.{ext})")
        y = -1
        if self.label is not None and self.label_codec is not None:
            data = self._member(key, raw, self.label, name="label", shard=shard)
            y = int(self.label_codec.decode(data, where=f"shard {shard}: key '{key}' field 'label' (.{self.label})"))
        return {"x": x, "y": y}

    def collate(self, samples: Sequence[dict[str, Any]], index: Sequence[int]) -> dict[str, Any]:
        x = {name: self.codecs[name].collate([s["x"][name] for s in samples]) for name in self.fields}
        return {"x": x if len(x) > 1 else next(iter(x.values())),
                "y": torch.as_tensor([s["y"] for s in samples], dtype=torch.long),
                "index": torch.as_tensor(list(index), dtype=torch.long)}


class DecodedCollate:
    """The bundle's collate for map-style shard splits: items are ``{"x": …, "y", "index"}`` from ShardMap."""

    def __init__(self, decoder: SampleDecoder) -> None:
        self.decoder = decoder

    def __call__(self, samples: Sequence[Any]) -> dict[str, Any]:
        if isinstance(samples, dict) and "x" in samples and "index" in samples and torch.is_tensor(samples["index"]):
            return samples  # a batch the stream already collated in its worker
        kept = [s for s in samples if s is not None]
        if not kept:
            raise DataError("every sample of this batch was skipped (data.on_error: skip); the shards are damaged")
        return self.decoder.collate(kept, [s["index"] for s in kept])


def fetch_or_skip(fetch: Callable[[int], Any], indices: Sequence[int], *, on_error: OnError,
                  source: str) -> tuple[list[Any], list[int]]:
    """``fetch(i)`` for each index of a lazy dataset's batch, and the indices kept. Under ``on_error: skip`` a
    sample whose fetch raises :class:`DataError` (the file named in it) is left out and logged, as shard samples
    are; the caller's batch carries ``skipped = len(indices) - len(kept)`` for the trainer's ``data/skipped``."""
    items, kept = [], []
    for index in indices:
        try:
            items.append(fetch(index))
        except DataError as error:
            if on_error != "skip":
                raise
            log.warning("data.on_error=skip: skipped %s", error)
            continue
        kept.append(index)
    if not kept:
        raise DataError(f"{source}: every sample of this batch was skipped (data.on_error: skip); the files are "
                        f"damaged")
    return items, kept
