"""Decoding audio files into mono float32 ``(T,)`` tensors, and finding them in folders, without silent losses.

An audit (F17) found ``.mp3``/``.m4a`` files skipped without a count and a WAV whose header promised 8,000 frames
but held 1,000 loaded as a short clip without a word (libsndfile quietly shortens it). Here every file in a
folder is decoded or counted in a WARNING, and a WAV shorter than its header is a :class:`DataError`.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path
from typing import Any

import numpy as np
import soundfile
import torch
from torch import Tensor

from omnissl.core.errors import DataError

log = logging.getLogger("omnissl.speech")

# MP3 needs libsndfile >= 1.1; where it is older, .mp3 files are counted as unsupported (never skipped silently).
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg") + ((".mp3",) if "MP3" in soundfile.available_formats() else ())
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # streaming writers put these in the data chunk when the length is not known


def to_mono(samples: np.ndarray, *, name: str) -> Tensor:
    """``(T,)`` or ``(T, C)`` (soundfile's layout) → ``(T,)`` float32 mean over channels."""
    array = np.asarray(samples, dtype=np.float32)
    if array.ndim == 2:
        array = array.mean(axis=1)
    if array.ndim != 1 or array.size == 0:
        raise DataError(f"{name}: empty or malformed audio (shape {array.shape})")
    if not np.isfinite(array).all():
        raise DataError(f"{name}: audio contains NaN or Inf samples")
    return torch.from_numpy(np.ascontiguousarray(array))


_RESAMPLERS: dict[tuple[int, int], Any] = {}


def resample(wave: Tensor, orig_rate: int, new_rate: int) -> Tensor:
    """``torchaudio`` band-limited sinc resampling; the kernel is built once per rate pair and reused."""
    if orig_rate == new_rate:
        return wave
    if (orig_rate, new_rate) not in _RESAMPLERS:
        import torchaudio

        _RESAMPLERS[orig_rate, new_rate] = torchaudio.transforms.Resample(orig_rate, new_rate)
    with torch.no_grad():
        return _RESAMPLERS[orig_rate, new_rate](wave)


def wav_shortfall(*, path: Path) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of a RIFF/WAVE ``data`` chunk that is cut short, else ``None``.

    Only plain RIFF headers are walked; anything else (RF64, a broken header) is left to libsndfile to judge.
    """
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        position = 12
        while position + 8 <= size:
            handle.seek(position)
            chunk = handle.read(8)
            ident, length = chunk[:4], struct.unpack(order + "I", chunk[4:])[0]
            if ident == b"data":
                present = size - position - 8
                if length in _UNKNOWN_SIZES or length <= present:
                    return None
                return length, present
            position += 8 + length + (length & 1)
    return None


def read_audio(path: Path, *, sample_rate: int) -> Tensor:
    """Read one audio file → mono float32 ``(T,)`` at ``sample_rate``; unreadable, cut or empty → DataError."""
    if path.suffix.lower() == ".wav" and path.is_file():
        short = wav_shortfall(path=path)
        if short is not None:
            raise DataError(f"{path}: truncated WAV: its header declares {short[0]} bytes of audio, the file holds "
                            f"{short[1]}")
    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=False)
    except Exception as error:  # soundfile raises its own LibsndfileError / RuntimeError types
        raise DataError(f"{path}: cannot decode audio ({error})") from error
    if int(rate) <= 0:
        raise DataError(f"{path}: sample rate {rate} in the header")
    return resample(to_mono(samples, name=str(path)), int(rate), sample_rate)


def audio_files(*, folder: Path) -> list[Path]:
    """Audio files under ``folder`` (sorted); other files are counted in one WARNING with a few examples."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    other = [p for p in files if p.suffix.lower() not in AUDIO_SUFFIXES]
    if other:
        examples = ", ".join(str(p.relative_to(folder)) for p in other[:5])
        log.warning("audio_folder: skipped %d file(s) in %s that are not %s audio (e.g. %s)", len(other), folder,
                    "/".join(AUDIO_SUFFIXES), examples)
    if not audio:
        raise DataError(f"{folder}: no {'/'.join(AUDIO_SUFFIXES)} files found ({len(other)} other files)")
    return audio
