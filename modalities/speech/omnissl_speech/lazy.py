"""Audio read per sample: an index of file paths and labels, each clip decoded in the DataLoader workers.

The lazy counterpart of :class:`omnissl_speech.data.AudioDataset` (issue 19): memory is one path and one label per
clip, so a folder or manifest of thousands of hours trains without decoding it up front. A batch has the same form,
``{"x": {"wave": (B, T) float32, "padding_mask": (B, T) bool}, "y": (B,), "index": (B,)}``, padded to the longest
clip of the batch. An unreadable, cut or empty file is a :class:`~omnissl.core.errors.DataError` naming the file
when its sample is fetched (the in-memory path finds it while loading instead); under ``data.on_error: skip`` a
batch leaves it out and carries ``skipped`` (counted like shard skips: ``data/skipped`` in metrics.jsonl).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.errors import DataError
from omnissl.data.samples import OnError, fetch_or_skip
from omnissl_speech import audio_io

# Below this many bytes of audio files a split is decoded once into memory (a batch is then a gather, not B file
# decodes). File bytes, not decoded bytes, so choosing needs one stat per file and no decode: 16-bit WAV decodes to
# 2× its size as float32, FLAC to about 4×, so 64 MiB of files is ~128–256 MiB of waveforms. Provisional: not yet
# measured against the lazy path on a quiet machine.
IN_MEMORY_FILE_BYTES = 64 * 2**20


def decide_in_memory(*, in_memory: bool | None, files: Sequence[Path], on_error: OnError = "raise") -> bool:
    """``data.in_memory`` as given, else in memory when the files add up to at most ``IN_MEMORY_FILE_BYTES``
    (never under ``on_error: skip``: only the lazy path can leave a clip out)."""
    if in_memory is not None:
        return bool(in_memory)
    if on_error == "skip":
        return False
    return sum(Path(f).stat().st_size for f in files) <= IN_MEMORY_FILE_BYTES


class LazyAudioDataset(Dataset[dict[str, Any]]):
    """``paths`` (one audio file per sample) with int64 ``labels`` ``(N,)``; decoded to mono at ``sample_rate``
    on fetch. ``names`` mirrors :class:`AudioDataset` (the file paths as strings)."""

    def __init__(self, paths: Sequence[Path | str], labels: Tensor, *, sample_rate: int, source: str = "",
                 on_error: OnError = "raise") -> None:
        if len(paths) != labels.shape[0]:
            raise DataError(f"{source}: {len(paths)} audio files but {labels.shape[0]} labels")
        self.names = [str(p) for p in paths]
        self.labels, self.sample_rate, self.source = labels.long(), sample_rate, source
        self.on_error = on_error

    def __len__(self) -> int:
        return len(self.names)

    def _wave(self, index: int) -> Tensor:
        return audio_io.read_audio(Path(self.names[index]), sample_rate=self.sample_rate)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"x": self._wave(index), "y": self.labels[index], "index": index}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        from omnissl_speech.data import pad_batch  # data imports this module

        waves, kept = fetch_or_skip(self._wave, indices, on_error=self.on_error, source=self.source)
        index = torch.as_tensor(kept, dtype=torch.long)
        return {**pad_batch(waves, self.labels[index], index), "skipped": torch.tensor(len(indices) - len(kept))}
