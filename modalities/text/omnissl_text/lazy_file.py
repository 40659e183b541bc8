"""``text_file`` with ``data.in_memory: false``: the bundle over :class:`omnissl_text.lazy.LazyTextDataset` splits
(offsets + labels indexed up front, rows tokenised on fetch; see :mod:`omnissl_text.lazy`)."""

from __future__ import annotations

from pathlib import Path

import torch

from omnissl.core.errors import DataError
from omnissl.core.types import DataBundle
from omnissl_text.collate import HashedTfidf, PadCollate
from omnissl_text.data import FileFormat, encode_labels, encode_test_labels, file_format_of, stratified_split
from omnissl_text.lazy import LazyTextDataset, index_file
from omnissl_text.tokenization import get_tokenizer


def lazy_text_file(train_path: Path, test_path: Path | None, *, text_column: str, label_column: str | None,
                    file_format: FileFormat, tokenizer: str, tokenizer_vocab_size: int, max_length: int,
                    test_fraction: float, split_seed: int, tokenizer_examples: int, description: str) -> DataBundle:
    """:func:`text_file` with ``in_memory: false``: offsets + labels indexed, rows tokenised on fetch."""
    fmt = file_format_of(train_path, file_format)
    offsets, raw = index_file(train_path, fmt=fmt, text_column=text_column, label_column=label_column)
    labels, classes = encode_labels(raw if raw is not None else [0] * len(offsets))
    if test_path is not None:
        if not test_path.is_file():
            raise DataError(f"text file not found: {test_path}")
        test_fmt = file_format_of(test_path, file_format)
        test_offsets, test_raw = index_file(test_path, fmt=test_fmt, text_column=text_column,
                                            label_column=label_column)
        test_labels = encode_test_labels(test_raw, len(test_offsets), classes, test_path=test_path,
                                         train_path=train_path)
        parts = [(train_path, fmt, offsets, labels), (test_path, test_fmt, test_offsets, test_labels)]
    else:
        train_rows, test_rows = stratified_split(labels, test_fraction=test_fraction, seed=split_seed)
        parts = [(train_path, fmt, offsets[train_rows], [labels[i] for i in train_rows]),
                 (train_path, fmt, offsets[test_rows], [labels[i] for i in test_rows])]
    sets = [LazyTextDataset(path, rows, ys, fmt=f, text_column=text_column, tokenizer=None, max_length=max_length)
            for path, f, rows, ys in parts if len(rows)]
    examples = [sets[0].text(i) for i in range(min(tokenizer_examples, len(sets[0])))]
    info = get_tokenizer(tokenizer, examples, vocab_size=tokenizer_vocab_size)
    for dataset in sets:
        dataset.tokenizer = info
    sample_ids = [torch.as_tensor(ids, dtype=torch.long) for ids in info.encode(examples, max_length=max_length)]
    spec = {**info.spec(), "max_length": max_length, "num_classes": len(classes), "class_names": tuple(classes)}
    return DataBundle(train=sets[0], test=sets[1] if len(sets) > 1 else None, collate=PadCollate(info.pad_token_id),
                      num_classes=len(classes), input_spec=spec,
                      raw_features=HashedTfidf(sample_ids, special_token_ids=info.special_token_ids),
                      description=f"{description} (tokenised per sample)", class_names=list(classes))
