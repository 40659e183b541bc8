"""The ``text`` field codec for shards (``.txt`` members, Parquet string columns): UTF-8 text tokenised in the
DataLoader workers; batches are ``{"input_ids", "attention_mask"}`` padded to the batch's longest sequence.
The tokeniser is fitted on the first example captions of the training shards (or loaded: ``package:NAME``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from omnissl.core.errors import ConfigError, DataError
from omnissl.data.codecs import register_codec
from omnissl_text.collate import PadCollate
from omnissl_text.tokenization import TokenizerInfo, get_tokenizer


class TextCodec:
    def __init__(self, *, info: TokenizerInfo, max_length: int) -> None:
        self.info, self.max_length = info, max_length
        self.pad = PadCollate(info.pad_token_id)
        self.input_spec: dict[str, Any] = {**info.spec(), "max_length": max_length}

    def decode(self, data: bytes, *, where: str) -> Tensor:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(f"{where}: not UTF-8 text ({error})") from None
        if not text.strip():
            raise DataError(f"{where}: empty text")
        return torch.as_tensor(self.info.encode([text], max_length=self.max_length)[0], dtype=torch.long)

    def collate(self, values: Sequence[Tensor]) -> dict[str, Tensor]:
        return self.pad([{"input_ids": v, "y": 0, "index": 0} for v in values])["x"]

    def synthetic(self, count: int, *, seed: int) -> list[bytes]:
        return synthetic_captions(count, seed=seed)


def synthetic_captions(count: int, *, seed: int) -> list[bytes]:
    words = ("a", "photo", "of", "the", "small", "red", "digit", "cat", "dog", "seven", "three", "blurry")
    generator = torch.Generator().manual_seed(seed)
    picks = torch.randint(0, len(words), (count, 5), generator=generator)
    return [" ".join(words[int(i)] for i in row).encode() for row in picks]


def build_text_codec(*, tokenizer: str = "wordpiece", tokenizer_vocab_size: int = 1000, max_length: int = 32,
                     examples: Sequence[bytes] = ()) -> TextCodec:
    if max_length < 3:
        raise ConfigError(f"data.decode.text.max_length: must be at least 3, got {max_length}")
    texts = [b.decode("utf-8", errors="replace") for b in examples] or [
        b.decode() for b in synthetic_captions(64, seed=0)]
    info = get_tokenizer(tokenizer, texts, vocab_size=tokenizer_vocab_size)
    return TextCodec(info=info, max_length=max_length)


register_codec("text", extensions=("txt", "text", "caption"), build=build_text_codec)
