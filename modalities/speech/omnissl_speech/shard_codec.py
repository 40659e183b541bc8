"""The ``audio`` field codec for shards (``.flac/.wav/.ogg`` members): mono float32 at ``sample_rate``, decoded in
the DataLoader workers; batches are zero-padded ``{"wave": (B, T), "padding_mask": (B, T)}`` as in-memory audio."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np
import soundfile
import torch
from torch import Tensor

from omnissl.core.errors import ConfigError, DataError
from omnissl.data.codecs import register_codec
from omnissl_speech.audio_io import resample, to_mono
from omnissl_speech.data import pad_batch


def decode_audio_bytes(data: bytes, *, sample_rate: int, where: str) -> Tensor:
    try:
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except Exception as error:
        raise DataError(f"{where}: cannot decode audio ({error})") from error
    if int(rate) <= 0:
        raise DataError(f"{where}: sample rate {rate} in the header")
    if np.size(samples) == 0:
        raise DataError(f"{where}: empty clip (no samples)")
    if not np.isfinite(samples).all():
        raise DataError(f"{where}: non-finite samples")
    return resample(to_mono(samples, name=where), int(rate), sample_rate)


class AudioCodec:
    def __init__(self, *, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.input_spec: dict[str, Any] = {"sample_rate": sample_rate}

    def decode(self, data: bytes, *, where: str) -> Tensor:
        return decode_audio_bytes(data, sample_rate=self.sample_rate, where=where)

    def collate(self, values: Sequence[Tensor]) -> dict[str, Tensor]:
        none = torch.zeros(len(values), dtype=torch.long)
        return pad_batch(list(values), none, none)["x"]

    def synthetic(self, count: int, *, seed: int) -> list[bytes]:
        generator = torch.Generator().manual_seed(seed)
        out = []
        for _ in range(count):
            wave = (torch.rand(self.sample_rate // 4, generator=generator) - 0.5).numpy()
            buffer = io.BytesIO()
            soundfile.write(buffer, wave, self.sample_rate, format="FLAC")
            out.append(buffer.getvalue())
        return out


def build_audio_codec(*, sample_rate: int = 16000, examples: Sequence[bytes] = ()) -> AudioCodec:
    if sample_rate < 1:
        raise ConfigError(f"data.decode.audio.sample_rate: must be positive, got {sample_rate}")
    return AudioCodec(sample_rate=sample_rate)


register_codec("audio", extensions=("flac", "wav", "ogg", "mp3"), build=build_audio_codec)
