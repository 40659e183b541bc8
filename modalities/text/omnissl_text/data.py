"""Text datasets: CSV / TSV / JSONL / plain-text files via pandas, AG News and SST-2 from the shared data root.

Reading is strict: undecodable bytes, a missing text column, an empty text or a missing label raise
:class:`~omnissl.core.errors.DataError` naming the file and the row; nothing is dropped silently. The tokeniser is trained
on the *training split's* text only (or loaded from a local HF directory), then every split is tokenised once.

AG News: only the official test split (7,600 rows, 1,900 per class) is available offline, so it is re-split with a
fixed, seeded, stratified 80/20 split (``split_seed``, independent of the run seed) into probe-train / probe-test.
SST-2: the official sentence-level train (6,920) / dev (872) / test (1,821) splits; evaluation uses ``test``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import torch

from omnissl.core.errors import DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.registry import DATASETS
from omnissl.core.textfiles import read_utf8
from omnissl.core.types import DataBundle
from omnissl_text.collate import HashedTfidf, PadCollate, TextDataset, synthetic_text
from omnissl_text.lazy import IN_MEMORY_FILE_BYTES
from omnissl_text.tokenization import get_tokenizer

AG_NEWS_CLASSES = ("World", "Sports", "Business", "Sci/Tech")
SST2_CLASSES = ("negative", "positive")
FileFormat = Literal["auto", "csv", "tsv", "jsonl", "txt"]


def _decode(path: Path) -> str:
    if not path.is_file():
        raise DataError(f"text file not found: {path}")
    return read_utf8(path)


def file_format_of(path: Path, file_format: FileFormat) -> str:
    return file_format if file_format != "auto" else {".tsv": "tsv", ".jsonl": "jsonl", ".txt": "txt"}.get(
        path.suffix.lower(), "csv")


def read_text_file(path: Path, *, text_column: str = "text", label_column: str | None = "label",
                   file_format: FileFormat = "auto", header: bool = True,
                   columns: Sequence[str] | None = None) -> tuple[list[str], list[Any] | None]:
    """Return ``(texts, labels or None)``. Rows are counted from 1, the header excluded; ``.txt`` is one text per
    line (no labels). ``columns`` names the columns of a header-less CSV/TSV."""
    fmt = file_format_of(path, file_format)
    content = _decode(path)
    if fmt != "txt" and not content.strip():
        raise DataError(f"{path}: no rows (empty file)")
    if fmt == "txt":
        lines = content.split("\n")
        if lines and lines[-1] == "":
            lines.pop()  # the file's final newline ends the last row; it is not an empty row
        for row, line in enumerate(lines, start=1):
            if not line.strip():
                raise DataError(f"{path}: line {row}: empty line (remove it, or use a CSV with a text column)")
        if not lines:
            raise DataError(f"{path}: no rows (empty file)")
        return [line.rstrip("\r") for line in lines], None
    if fmt == "jsonl":
        records = []
        for row, line in enumerate(content.splitlines(), start=1):
            if not line.strip():
                raise DataError(f"{path}: line {row}: empty line in a JSONL file")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(f"{path}: line {row}: not valid JSON ({error.msg})") from None
            except RecursionError:  # "[[[[…" deeper than Python's stack
                raise DataError(f"{path}: line {row}: JSON nested too deeply") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}: line {row}: expected a JSON object, got {type(record).__name__}")
            records.append(record)
        frame = pd.DataFrame.from_records(records)
        missing_rows = {key: [i + 1 for i, r in enumerate(records) if key not in r]
                        for key in (text_column, label_column) if key}
    else:
        sep = "\t" if fmt == "tsv" else ","
        try:
            frame = pd.read_csv(io.StringIO(content), sep=sep, header=0 if header else None, dtype=str,
                                keep_default_na=False, names=list(columns) if columns else None)
        except (pd.errors.ParserError, ValueError) as error:
            raise DataError(f"{path}: not a readable {fmt.upper()} file ({error})") from None
        missing_rows = {}
    if len(frame) == 0:  # else the tokeniser fails later on "an empty corpus", naming no file (audit F18)
        raise DataError(f"{path}: no rows ({'only a header' if len(frame.columns) else 'empty file'})")
    for key in (text_column, label_column):
        if key is not None and key not in frame.columns:
            raise DataError(f"{path}: no column '{key}' (columns: {', '.join(map(str, frame.columns))})")
        if missing_rows.get(key):
            raise DataError(f"{path}: line {missing_rows[key][0]}: missing key '{key}'")
    texts = []
    for row, value in enumerate(frame[text_column].tolist(), start=1):
        if value is not None and not isinstance(value, (str, float)):  # JSONL: a number, list or object
            raise DataError(f"{path}: row {row}: column '{text_column}' holds a {type(value).__name__}, not text")
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"{path}: row {row}: empty text in column '{text_column}'")
        texts.append(value)
    labels = None
    if label_column is not None:
        labels = frame[label_column].tolist()
        for row, value in enumerate(labels, start=1):
            if value is None or (isinstance(value, str) and not value.strip()) or value != value:
                raise DataError(f"{path}: row {row}: missing label in column '{label_column}'")
    return texts, labels


def encode_labels(labels: Sequence[Any], classes: Sequence[str] | None = None) -> tuple[list[int], tuple[str, ...]]:
    """Label values → ``0..C-1``; the class order is ``classes`` when given, else sorted (numerically if all ints)."""
    names = [str(v).strip() for v in labels]
    if classes is None:
        unique = sorted(set(names), key=lambda s: (0, int(s)) if s.lstrip("-").isdigit() else (1, s))
        classes = tuple(unique)
    lookup = {name: i for i, name in enumerate(classes)}
    return [lookup[n] for n in names], tuple(classes)


def encode_test_labels(raw: Sequence[Any] | None, count: int, classes: Sequence[str], *, test_path: Path,
                       train_path: Path) -> list[int]:
    """A separate test file's labels in the train file's class order; a label train never has is a DataError."""
    unknown = sorted({str(v).strip() for v in (raw or [])} - set(classes))
    if unknown:
        raise DataError(f"{test_path}: labels {unknown} never occur in {train_path}")
    return encode_labels(raw if raw is not None else [0] * count, classes)[0]


def stratified_split(labels: Sequence[int], *, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Fixed, seeded, stratified split of row indices: each class is cut in the same proportion."""
    generator = torch.Generator().manual_seed(seed)
    y = torch.as_tensor(labels)
    train, test = [], []
    for label in y.unique():
        members = (y == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        cut = int(round(len(members) * test_fraction))
        test += members[:cut].tolist()
        train += members[cut:].tolist()
    return sorted(train), sorted(test)


def make_bundle(train: tuple[list[str], list[int]], test: tuple[list[str], list[int]] | None, *, tokenizer: str,
                tokenizer_vocab_size: int, max_length: int, class_names: Sequence[str], description: str,
                source: str) -> DataBundle:
    """Train (or load) the tokeniser on the train texts, tokenise every split, publish the ids in ``input_spec``."""
    info = get_tokenizer(tokenizer, train[0], vocab_size=tokenizer_vocab_size)
    train_set = TextDataset(info.encode(train[0], max_length=max_length), train[1], texts=train[0], source=source)
    test_set = None
    if test is not None:
        test_set = TextDataset(info.encode(test[0], max_length=max_length), test[1], texts=test[0], source=source)
    spec = {**info.spec(), "max_length": max_length, "num_classes": len(class_names),
            "class_names": tuple(class_names)}
    return DataBundle(train=train_set, test=test_set, collate=PadCollate(info.pad_token_id),
                      num_classes=len(class_names), input_spec=spec,
                      raw_features=HashedTfidf(train_set.ids, special_token_ids=info.special_token_ids),
                      description=description, class_names=list(class_names))


def synthetic_bundle(count: int, *, num_classes: int, seed: int, max_length: int, description: str) -> DataBundle:
    """Fake ids over a 128-token vocabulary with BERT-style specials 0–4: for ``omnissl validate`` (no files)."""
    fake = synthetic_text(count, vocab_size=128, num_special=5, num_classes=num_classes, seed=seed,
                          max_length=min(max_length, 24))
    spec = {"vocab_size": 128, "pad_token_id": 0, "mask_token_id": 4, "cls_token_id": 2, "sep_token_id": 3,
            "special_token_ids": (0, 1, 2, 3, 4), "tokenizer_dir": None, "max_length": max_length,
            "num_classes": num_classes, "class_names": tuple(str(i) for i in range(num_classes))}
    return DataBundle(train=fake, test=fake, collate=PadCollate(0), num_classes=num_classes, input_spec=spec,
                      raw_features=HashedTfidf(fake.ids, special_token_ids=(0, 1, 2, 3, 4), buckets=128),
                      description=description, class_names=list(spec["class_names"]))


def _pick(texts: list[str], labels: list[int], rows: list[int]) -> tuple[list[str], list[int]]:
    return [texts[i] for i in rows], [labels[i] for i in rows]


def load_ag_news(data_root: Path, *, test_fraction: float, split_seed: int) -> tuple[tuple, tuple]:
    path = data_root / "ag_news" / "test.csv"
    frame_texts, raw = read_text_file(path, text_column="description", label_column="label", header=False,
                                      columns=("label", "title", "description"))
    titles, _ = read_text_file(path, text_column="title", label_column=None, header=False,
                               columns=("label", "title", "description"))
    for row, value in enumerate(raw, start=1):
        if value not in {"1", "2", "3", "4"}:
            raise DataError(f"{path}: row {row}: class index must be 1–4, got {value!r}")
    labels = [int(v) - 1 for v in raw]
    # The source escapes line breaks as a lone backslash; title and description are joined as one text.
    texts = [f"{t} . {d}".replace("\\", " ") for t, d in zip(titles, frame_texts)]
    train_rows, test_rows = stratified_split(labels, test_fraction=test_fraction, seed=split_seed)
    return _pick(texts, labels, train_rows), _pick(texts, labels, test_rows)


def load_sst2(data_root: Path, *, eval_split: str) -> tuple[tuple, tuple]:
    path = data_root / "sst2" / "sst2.csv"
    texts, labels = read_text_file(path, text_column="sentence", label_column="label")
    splits, _ = read_text_file(path, text_column="split", label_column=None)
    for row, value in enumerate(labels, start=1):  # type: ignore[arg-type]
        if value not in {"0", "1"}:
            raise DataError(f"{path}: row {row}: label must be 0 or 1, got {value!r}")
    y = [int(v) for v in labels]  # type: ignore[union-attr]
    train_rows = [i for i, s in enumerate(splits) if s == "train"]
    test_rows = [i for i, s in enumerate(splits) if s == eval_split]
    for split, rows in (("train", train_rows), (eval_split, test_rows)):
        if not rows:
            raise DataError(f"{path}: no rows of split '{split}' (column 'split')")
    return _pick(texts, y, train_rows), _pick(texts, y, test_rows)


@DATASETS.register("text_file", modality="text", description="text + label columns from CSV/TSV/JSONL/.txt files")
def text_file(*, train: str, test: str | None = None, text_column: str = "text", label_column: str | None = "label",
              file_format: FileFormat = "auto", tokenizer: str = "wordpiece", tokenizer_vocab_size: int = 8000,
              max_length: int = 128, test_fraction: float = 0.2, split_seed: int = 0, in_memory: bool | None = None,
              tokenizer_examples: int = 10000, data_root: Path = Path("."), synthetic: int | None = None,
              seed: int = 0) -> DataBundle:
    """Paths inside the data root (:func:`omnissl.core.paths.resolve_data_path`). Without ``test``, a seeded stratified ``test_fraction`` split is made.
    Without ``label_column`` every row gets label 0 (pretraining only). ``tokenizer``: ``wordpiece``, ``bpe``, a
    local HF tokeniser directory, or ``package:NAME`` for one shipped inside an installed package.
    ``in_memory``: ``true`` reads and tokenises every row now; ``false`` (``.txt`` / ``.jsonl`` only) keeps byte
    offsets and tokenises per sample in the workers, the tokeniser fitted on the first ``tokenizer_examples`` rows
    (:mod:`omnissl_text.lazy`); unset: in memory when the training file is at most ``IN_MEMORY_FILE_BYTES``."""
    if synthetic is not None:
        return synthetic_bundle(synthetic, num_classes=2, seed=seed, max_length=max_length,
                                description="synthetic text")
    train_path = resolve_data_path(data_root, train, key="data.train")
    test_path = resolve_data_path(data_root, test, key="data.test") if test is not None else None
    if not train_path.is_file():
        raise DataError(f"text file not found: {train_path}")
    if in_memory is None:
        in_memory = train_path.stat().st_size <= IN_MEMORY_FILE_BYTES
    if not in_memory:
        from omnissl_text.lazy_file import lazy_text_file  # it reads this module's helpers

        return lazy_text_file(train_path, test_path, text_column=text_column, label_column=label_column,
                               file_format=file_format, tokenizer=tokenizer, tokenizer_vocab_size=tokenizer_vocab_size,
                               max_length=max_length, test_fraction=test_fraction, split_seed=split_seed,
                               tokenizer_examples=tokenizer_examples, description=f"{train} / {test or 'split'}")
    texts, raw = read_text_file(train_path, text_column=text_column, label_column=label_column,
                                file_format=file_format)
    labels, classes = encode_labels(raw if raw is not None else [0] * len(texts))
    if test_path is not None:
        test_texts, test_raw = read_text_file(test_path, text_column=text_column, label_column=label_column,
                                              file_format=file_format)
        test_labels = encode_test_labels(test_raw, len(test_texts), classes, test_path=test_path,
                                         train_path=train_path)
        train_part, test_part = (texts, labels), (test_texts, test_labels)
    else:
        train_rows, test_rows = stratified_split(labels, test_fraction=test_fraction, seed=split_seed)
        train_part, test_part = _pick(texts, labels, train_rows), _pick(texts, labels, test_rows)
    return make_bundle(train_part, test_part, tokenizer=tokenizer, tokenizer_vocab_size=tokenizer_vocab_size,
                       max_length=max_length, class_names=classes, description=f"{train} / {test or 'split'}",
                       source=str(train_path))


@DATASETS.register("ag_news", modality="text", description="AG News 4-way: official test.csv, seeded 80/20 split")
def ag_news(*, tokenizer: str = "wordpiece", tokenizer_vocab_size: int = 8000, max_length: int = 128,
            test_fraction: float = 0.2, split_seed: int = 0, data_root: Path = Path("."),
            synthetic: int | None = None, seed: int = 0) -> DataBundle:
    if synthetic is not None:
        return synthetic_bundle(synthetic, num_classes=4, seed=seed, max_length=max_length,
                                description="synthetic AG News")
    train, test = load_ag_news(data_root, test_fraction=test_fraction, split_seed=split_seed)
    return make_bundle(train, test, tokenizer=tokenizer, tokenizer_vocab_size=tokenizer_vocab_size,
                       max_length=max_length, class_names=AG_NEWS_CLASSES, source="ag_news/test.csv",
                       description=f"AG News official test split re-split {1 - test_fraction:.0%}/{test_fraction:.0%} "
                                   f"(stratified, split_seed={split_seed})")


@DATASETS.register("sst2", modality="text", description="SST-2 sentence level: official train / dev / test")
def sst2(*, tokenizer: str = "wordpiece", tokenizer_vocab_size: int = 8000, max_length: int = 128,
         eval_split: Literal["dev", "test"] = "test", data_root: Path = Path("."), synthetic: int | None = None,
         seed: int = 0) -> DataBundle:
    if synthetic is not None:
        return synthetic_bundle(synthetic, num_classes=2, seed=seed, max_length=max_length,
                                description="synthetic SST-2")
    train, test = load_sst2(data_root, eval_split=eval_split)
    return make_bundle(train, test, tokenizer=tokenizer, tokenizer_vocab_size=tokenizer_vocab_size,
                       max_length=max_length, class_names=SST2_CLASSES, source="sst2/sst2.csv",
                       description=f"SST-2 official train / {eval_split}")


@DATASETS.register("ag_news_sst2", modality="text",
                   description="pretraining corpus: AG News train part + SST-2 train (6-way source-offset labels)")
def ag_news_sst2(*, tokenizer: str = "wordpiece", tokenizer_vocab_size: int = 8000, max_length: int = 128,
                 test_fraction: float = 0.2, split_seed: int = 0, data_root: Path = Path("."),
                 synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """The unlabelled text of both training parts (no test text). Labels are AG 0–3 and SST-2 4–5 so the runner's
    end-of-training probe has something to read; the benchmark probes each set separately instead."""
    if synthetic is not None:
        return synthetic_bundle(synthetic, num_classes=6, seed=seed, max_length=max_length,
                                description="synthetic AG News + SST-2")
    (ag_tr, ag_te) = load_ag_news(data_root, test_fraction=test_fraction, split_seed=split_seed)
    (sst_tr, sst_te) = load_sst2(data_root, eval_split="test")
    train = (ag_tr[0] + sst_tr[0], ag_tr[1] + [y + 4 for y in sst_tr[1]])
    test = (ag_te[0] + sst_te[0], ag_te[1] + [y + 4 for y in sst_te[1]])
    return make_bundle(train, test, tokenizer=tokenizer, tokenizer_vocab_size=tokenizer_vocab_size,
                       max_length=max_length, class_names=(*AG_NEWS_CLASSES, *SST2_CLASSES),
                       source="ag_news + sst2", description="AG News train part + SST-2 train")
