"""Sharded datasets a recipe names: ``webdataset`` (tar shards of media: image, audio, image–text, audio–text) and
``parquet_shards`` (rows of text or encoded media). Nothing is held in memory but an index of shards.

```yaml
data: {name: webdataset, shards: shards/train, test_shards: shards/test, fields: {image: jpg, text: txt}}
```
``fields`` maps each input (one entry: a single-modality batch; two or more: the paired ``x`` dict CLIP/SigLIP
read) to a member extension (a Parquet column); ``label`` names the class member (``cls``; ``null`` for none);
``verify`` (default true) checks each local shard against its manifest sha256 when first read
(:func:`omnissl.data.shardread.verify_shard`);
``decode`` passes options to a field's codec (``{image: {image_size: 64}}``). Training streams
(:mod:`omnissl.data.stream`); the test split is read by index, every sample once, in order. Codecs are built from
the first ``examples`` members of the training shards (the text codec fits its tokeniser on them, the image codec
measures the channel mean/std the encoder normalises with).
"""

from __future__ import annotations

from dataclasses import replace
from itertools import islice
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from omnissl.core.errors import ConfigError
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl.data.codecs import codec_for
from omnissl.data.samples import DecodedCollate, OnError, SampleDecoder
from omnissl.data.shardlist import ShardSet, resolve_shards
from omnissl.data.shardread import iter_shard
from omnissl.data.stream import ShardMap, ShardStream

Shards = str | list[str]


class DecodedList(Dataset[dict[str, Any]]):
    """``synthetic:`` samples: encoded in memory by each codec, decoded per item exactly as shard members are."""

    def __init__(self, raw: list[dict[str, bytes]], decoder: SampleDecoder) -> None:
        self.raw, self.decoder = raw, decoder

    def __len__(self) -> int:
        return len(self.raw)

    def __getitem__(self, i: int) -> dict[str, Any] | None:
        sample = self.decoder.decode(f"synthetic{i:06d}", self.raw[i], shard="synthetic")
        return None if sample is None else {**sample, "index": i}


def _examples(shards: ShardSet, ext: str | None, count: int) -> list[Any]:
    """The first ``count`` members ``.ext`` of the shards, or whole rows when ``ext`` is None (row codecs)."""
    def members() -> Any:
        for shard in shards.shards:
            for _, raw in iter_shard(shard, format=shards.format):
                if ext is None:
                    yield raw
                elif ext in raw:
                    yield raw[ext]

    return list(islice(members(), count))


def _decoder(*, fields: dict[str, str], label: str | None, decode: dict[str, dict[str, Any]], on_error: OnError,
             examples: Any, manifest: dict[str, Any] | None) -> SampleDecoder:
    if not fields:
        raise ConfigError("data.fields: name at least one input, e.g. {image: jpg}")
    unknown = sorted(set(decode) - set(fields))
    if unknown:
        raise ConfigError(f"data.decode.{unknown[0]}: not one of the fields {sorted(fields)}")
    codecs, rows = {}, []
    for name, ext in fields.items():
        entry = codec_for(ext, key=f"data.fields.{name}")
        # a row codec (tabular) reads the whole row and the encoding the manifest fixed at shard time
        extra = {"manifest": manifest} if entry.row else {}
        try:
            codecs[name] = entry.build(**decode.get(name, {}), examples=examples(None if entry.row else ext), **extra)
        except TypeError as error:
            raise ConfigError(f"data.decode.{name}: {error}") from error
        if entry.row:
            rows.append(name)
    label_codec = codec_for(label, key="data.label").build(examples=[]) if label else None
    return SampleDecoder(fields=fields, codecs=codecs, label=label, label_codec=label_codec, on_error=on_error,
                         row_fields=rows)


def _spec(decoder: SampleDecoder, *, num_classes: int | None) -> dict[str, Any]:
    specs = {name: dict(codec.input_spec) for name, codec in decoder.codecs.items()}
    spec: dict[str, Any] = specs if len(specs) > 1 else next(iter(specs.values()))
    if num_classes is not None and len(specs) == 1:
        spec["num_classes"] = num_classes
    return spec


def _checked(shards: ShardSet, verify: bool) -> ShardSet:
    """``data.verify: false`` drops the manifest digests, so the readers hash nothing (the user's opt-out)."""
    if not verify:
        shards.shards = [replace(s, sha256=None) for s in shards.shards]
    return shards


def _raw(decoder: SampleDecoder) -> Any:
    """A single field's raw-input baseline, when its codec offers one (tabular: standardised + one-hot)."""
    return getattr(next(iter(decoder.codecs.values())), "raw_features", None) if len(decoder.codecs) == 1 else None


def sharded(*, format: str, shards: Shards, test_shards: Shards | None, fields: dict[str, str], label: str | None,
            decode: dict[str, dict[str, Any]] | None, on_error: OnError, shuffle_buffer: int, examples: int,
            num_classes: int | None, data_root: Path, synthetic: int | None, seed: int,
            verify: bool = True) -> DataBundle:
    decode = decode or {}
    if shuffle_buffer < 1:
        raise ConfigError(f"data.shuffle_buffer: must be at least 1, got {shuffle_buffer}")
    if synthetic is not None:
        raw: dict[str, list[bytes]] = {}
        whole: list[list[dict[str, Any]]] = []  # rows of row codecs, merged into each sample
        for name, ext in fields.items():
            entry = codec_for(ext, key=f"data.fields.{name}")
            made = entry.build(examples=[], **({"manifest": None} if entry.row else {})).synthetic(synthetic, seed=seed)
            if entry.row:
                whole.append(made)
            else:
                raw[ext] = made
        if label:
            raw[label] = [str(i % (num_classes or 2)).encode() for i in range(synthetic)]
        rows = [{**{k: v for part in whole for k, v in part[i].items()}, **{ext: values[i] for ext, values in raw.items()}}
                for i in range(synthetic)]
        decoder = _decoder(fields=fields, label=label, decode=decode, on_error=on_error, manifest=None,
                           examples=lambda ext: rows[:examples] if ext is None else raw[ext][:examples])
        data = DecodedList(rows, decoder)
        return DataBundle(train=data, test=data, collate=DecodedCollate(decoder), num_classes=num_classes or 2,
                          input_spec=_spec(decoder, num_classes=num_classes or 2), raw_features=_raw(decoder),
                          description=f"synthetic {format} samples")
    train_set = _checked(resolve_shards(shards, data_root=data_root, key="data.shards"), verify)
    if train_set.format != format:
        raise ConfigError(f"data.shards: these are {train_set.format} shards; use name: "
                          f"{'webdataset' if train_set.format == 'webdataset' else 'parquet_shards'}")
    decoder = _decoder(fields=fields, label=label, decode=decode, on_error=on_error, manifest=train_set.manifest,
                       examples=lambda ext: _examples(train_set, ext, examples))
    test = None
    if test_shards is not None:
        test = ShardMap(_checked(resolve_shards(test_shards, data_root=data_root, key="data.test_shards"), verify),
                        decoder)
    classes = train_set.classes
    if num_classes is None and classes:
        num_classes = len(classes)
    random_access = ShardMap(train_set, decoder) if all(s.local for s in train_set.shards) else None
    train = ShardStream(train_set, decoder, shuffle_buffer=shuffle_buffer, random_access=random_access)
    names = [str(c) for c in classes] if classes and len(classes) == num_classes else None
    return DataBundle(train=train, test=test, collate=DecodedCollate(decoder), num_classes=num_classes,
                      input_spec=_spec(decoder, num_classes=num_classes), class_names=names,
                      raw_features=_raw(decoder),
                      description=f"{format} shards: {train_set.samples} samples in {len(train_set.shards)} shards")


_EXAMPLE = {"shards": "shards/train", "fields": {"x": "cls"}, "label": None}


@DATASETS.register("webdataset", modality="shards", description="WebDataset tar shards (image/audio/text, pairs)",
                   example_params=_EXAMPLE)
def webdataset(*, shards: Shards, fields: dict[str, str], test_shards: Shards | None = None, label: str | None = "cls",
               decode: dict[str, dict[str, Any]] | None = None, on_error: Literal["raise", "skip"] = "raise",
               shuffle_buffer: int = 1000, examples: int = 2000, num_classes: int | None = None,
               data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0,
               verify: bool = True) -> DataBundle:
    """Tar shards as webdataset writes them (``key.jpg`` + ``key.txt`` + ``key.cls`` adjacent in one tar)."""
    return sharded(format="webdataset", shards=shards, test_shards=test_shards, fields=fields, label=label,
                   decode=decode, on_error=on_error, shuffle_buffer=shuffle_buffer, examples=examples,
                   num_classes=num_classes, data_root=data_root, synthetic=synthetic, seed=seed, verify=verify)


@DATASETS.register("parquet_shards", modality="shards", description="Parquet shards: one sample per row",
                   example_params=_EXAMPLE)
def parquet_shards(*, shards: Shards, fields: dict[str, str], test_shards: Shards | None = None,
                   label: str | None = "cls", decode: dict[str, dict[str, Any]] | None = None,
                   on_error: Literal["raise", "skip"] = "raise", shuffle_buffer: int = 1000, examples: int = 2000,
                   num_classes: int | None = None, data_root: Path = Path("."), synthetic: int | None = None,
                   seed: int = 0, verify: bool = True) -> DataBundle:
    """Columns are fields (``fields: {text: txt}`` reads column ``txt``); strings are read as UTF-8 text."""
    return sharded(format="parquet", shards=shards, test_shards=test_shards, fields=fields, label=label,
                   decode=decode, on_error=on_error, shuffle_buffer=shuffle_buffer, examples=examples,
                   num_classes=num_classes, data_root=data_root, synthetic=synthetic, seed=seed, verify=verify)
