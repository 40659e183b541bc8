"""What ``omnissl shard SOURCE`` converts, as ``{split: samples}`` with samples ``(key, {ext: bytes})``:

- a folder ``SOURCE/[train|test/]<class>/<file>`` of images or audio: each file's bytes as they are (no
  re-encoding, so nothing is lost) plus ``cls``, the class index of train's sorted class names;
- an image–caption manifest, ``.csv`` or ``.jsonl`` with ``image_path, caption[, label]`` (paths relative to the
  manifest): ``<ext>`` + ``txt`` (+ ``cls``);
- a registered dataset name (``mnist``, ``fsdd``, ``cifar10`` …, read under the data root): in-memory images are
  written as PNG, waveforms as FLAC, texts as UTF-8, with ``cls`` from the labels;
- a registered table (``adult``, ``tabular_file`` …): Parquet rows of raw cells. Such a dataset, built inside
  :func:`collecting_rows`, gives each split a ``shard_table`` (``len``, ``row(i) -> {column: cell}``,
  ``manifest``: entries for ``manifest.json``, e.g. the schema fitted on train that every reader encodes with).

Every file is read or counted: files of other types in a folder are reported with their count.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omnissl.core.errors import DataError

log = logging.getLogger("omnissl.data")
MEDIA = {"jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff", "ppm", "pgm", "flac", "wav", "ogg", "mp3"}
Sample = tuple[str, dict[str, Any]]
_ROWS_WANTED: ContextVar[bool] = ContextVar("omnissl_shard_rows_wanted", default=False)


def rows_wanted() -> bool:
    """True while ``omnissl shard`` builds a dataset: a table then keeps its raw rows as ``shard_table``."""
    return _ROWS_WANTED.get()


@contextmanager
def collecting_rows() -> Iterator[None]:
    token = _ROWS_WANTED.set(True)
    try:
        yield
    finally:
        _ROWS_WANTED.reset(token)


@dataclass
class Source:
    """Per split, a list of thunks that produce one sample each (so shuffling the order reads nothing)."""

    splits: dict[str, list[Callable[[], Sample]]]
    classes: list[str] | None = None
    notes: list[str] = field(default_factory=list)
    format: str = "webdataset"  # "parquet" for table rows
    extra: dict[str, Any] = field(default_factory=dict)  # more manifest entries (a table's fitted schema)

    def samples(self, split: str, *, seed: int, captions: str | None = None) -> Iterator[Sample]:
        """The split's samples in a seeded order; ``captions`` (``"a photo of a {}"``) adds a label-derived
        ``txt`` member from the class name (label-derived pairs, not real captions)."""
        order = list(self.splits[split])
        random.Random(seed).shuffle(order)  # shards mix classes: a stream's shuffle buffer mixes within a shard
        if captions is not None and not self.classes:
            raise DataError("--captions needs class names, and this source has none")
        for make in order:
            key, members = make()
            if captions is not None:
                members["txt"] = captions.format(self.classes[int(members["cls"])]).encode("utf-8")  # type: ignore[index]
            yield key, members


def _file_sample(path: Path, key: str, extra: dict[str, bytes]) -> Callable[[], Sample]:
    def make() -> Sample:
        try:
            data = path.read_bytes()
        except OSError as error:
            raise DataError(f"{path}: cannot read ({error})") from error
        return key, {path.suffix.lower().lstrip("."): data, **extra}
    return make


def from_folder(root: Path) -> Source:
    splits = {name: root / name for name in ("train", "test") if (root / name).is_dir()} or {"train": root}
    classes = sorted(p.name for p in splits["train"].iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{splits['train']}: no class folders (expected {splits['train']}/<class>/<file>)")
    index = {name: i for i, name in enumerate(classes)}
    source = Source(splits={}, classes=classes)
    for split, folder in splits.items():
        makers, other = [], []
        for class_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            if class_dir.name not in index:
                raise DataError(f"{class_dir}: class '{class_dir.name}' does not occur in {splits['train']}")
            for path in sorted(p for p in class_dir.rglob("*") if p.is_file()):
                if path.suffix.lower().lstrip(".") not in MEDIA:
                    other.append(path)
                    continue
                key = f"{class_dir.name}_{path.relative_to(class_dir).with_suffix('').as_posix()}".replace(".", "_")
                makers.append(_file_sample(path, key.replace("/", "_"), {"cls": str(index[class_dir.name]).encode()}))
        if other:
            note = f"{split}: skipped {len(other)} file(s) that are not images or audio (e.g. {other[0]})"
            log.warning(note)
            source.notes.append(note)
        if not makers:
            raise DataError(f"{folder}: no image or audio files")
        source.splits[split] = makers
    return source


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        return list(csv.DictReader(io.StringIO(text)))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataError(f"{path}: not a readable caption manifest ({type(error).__name__}: {error})") from error


def from_caption_manifest(path: Path) -> Source:
    rows = _manifest_rows(path)
    if not rows:
        raise DataError(f"{path}: no rows")
    labels = sorted({str(r["label"]) for r in rows if r.get("label") not in (None, "")})
    index = {name: i for i, name in enumerate(labels)}
    makers = []
    for number, row in enumerate(rows, start=2 if path.suffix.lower() == ".csv" else 1):
        image, caption = row.get("image_path"), row.get("caption")
        if not image or caption is None or not str(caption).strip():
            raise DataError(f"{path}: row {number} needs image_path and a non-empty caption, got {row}")
        extra = {"txt": str(caption).encode("utf-8")}
        if labels:
            if row.get("label") in (None, ""):
                raise DataError(f"{path}: row {number} has no label while other rows do")
            extra["cls"] = str(index[str(row["label"])]).encode()
        file = (path.parent / str(image))
        if not file.is_file():
            raise DataError(f"{path}: row {number}: image not found: {file}", missing_path=file)
        makers.append(_file_sample(file, f"row{number:09d}", extra))
    return Source(splits={"train": makers}, classes=labels or None)


def _encode_item(x: Any, *, spec: dict[str, Any], where: str) -> dict[str, bytes]:
    import torch

    if isinstance(x, dict) and "input_ids" in x:
        raise DataError(f"{where}: token ids cannot be turned back into text; shard the source text files instead")
    if torch.is_tensor(x) and x.dtype == torch.uint8 and x.ndim == 3:
        from PIL import Image

        array = x.permute(1, 2, 0).numpy()
        buffer = io.BytesIO()
        Image.fromarray(array[..., 0] if array.shape[2] == 1 else array).save(buffer, format="PNG")
        return {"png": buffer.getvalue()}
    if torch.is_tensor(x) and x.is_floating_point() and x.ndim == 1 and "sample_rate" in spec:
        import soundfile

        buffer = io.BytesIO()
        soundfile.write(buffer, x.numpy(), int(spec["sample_rate"]), format="FLAC", subtype="PCM_24")
        return {"flac": buffer.getvalue()}
    raise DataError(f"{where}: cannot write items of this dataset to shards (x is {type(x).__name__} "
                    f"{tuple(getattr(x, 'shape', ()))}); image (uint8 C×H×W) and audio datasets can be sharded")


def from_dataset(name: str, *, data_root: Path, params: dict[str, Any] | None = None) -> Source:
    from omnissl.core.config import Component
    from omnissl.core.instantiate import build_component
    from omnissl.core.registry import DATASETS, load_plugins

    load_plugins()
    with collecting_rows():
        bundle = build_component(DATASETS, Component(name=name, **(params or {})), "data",
                                 {"data_root": data_root, "seed": 0})
    return from_bundle(bundle, name=name)


def from_bundle(bundle: Any, *, name: str) -> Source:
    """A built bundle's splits as shard samples (a table's only when it was built inside :func:`collecting_rows`)."""
    source = Source(splits={}, classes=bundle.class_names)
    for split in ("train", "test"):
        dataset = getattr(bundle, split)
        if dataset is None:
            continue
        table = getattr(dataset, "shard_table", None)
        if table is not None:
            source.format = "parquet"
            source.extra = dict(table.manifest)  # the train split's (both carry the one schema fitted on train)
            source.splits[split] = [(lambda i=i, t=table, s=split: (f"{s}-row{i:09d}", t.row(i)))  # type: ignore[misc]
                                    for i in range(len(table))]
            continue

        def maker(i: int, dataset: Any = dataset, split: str = split) -> Callable[[], Sample]:
            def make() -> Sample:
                item = dataset[i]
                members = _encode_item(item["x"], spec=bundle.input_spec, where=f"{name} {split} item {i}")
                return f"{split}{i:09d}", {**members, "cls": str(int(item["y"])).encode()}
            return make

        source.splits[split] = [maker(i) for i in range(len(dataset))]
    return source


def open_source(source: str, *, data_root: Path) -> Source:
    path = Path(source).expanduser()
    if path.is_dir():
        return from_folder(path)
    if path.suffix.lower() in (".csv", ".jsonl") and path.is_file():
        return from_caption_manifest(path)
    if path.exists() or "/" in source:
        raise DataError(f"{source}: not a folder of class sub-folders, a caption manifest (.csv/.jsonl) or a "
                        f"registered dataset name")
    return from_dataset(source, data_root=data_root)
