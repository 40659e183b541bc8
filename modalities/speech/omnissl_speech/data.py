"""Audio datasets held in memory as mono float32 waveforms, padded per batch with a padding mask.

Sources: the Free Spoken Digit Dataset packed as ``fsdd/fsdd.npz`` (Jackson et al., Zenodo 10.5281/zenodo.1342401;
official split: recording index 0–4 → test), audio folders (wav/flac/ogg, label from the sub-folder or a filename
regex) and manifest CSVs (``path,label[,speaker]``). Files are read with ``soundfile`` (torchaudio's own loader
needs torchcodec/FFmpeg), down-mixed to mono and resampled once at load time with
``torchaudio.functional.resample``. Every recording is kept at full length; random crop/pad to a fixed duration
for training is the ``random_crop`` augmentation, so evaluation always sees whole utterances.

A batch is ``{"x": {"wave": (B, T) float32, "padding_mask": (B, T) bool (True = padding)}, "y": (B,), "index": (B,)}``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from omnissl.core.errors import ConfigError, DataError
from omnissl.core.paths import resolve_data_path
from omnissl.core.registry import DATASETS
from omnissl.core.types import DataBundle
from omnissl.data.samples import OnError
from omnissl_speech.audio_io import AUDIO_SUFFIXES, audio_files, read_audio, resample, to_mono
from omnissl_speech.features import mean_log_mel
from omnissl_speech.lazy import LazyAudioDataset, decide_in_memory
from omnissl_speech.readers import load_fsdd, read_manifest

__all__ = ["AUDIO_SUFFIXES", "AudioDataset", "audio_folder", "audio_manifest", "collate_audio", "fsdd", "read_audio",
           "to_mono"]


class AudioDataset(Dataset[dict[str, Any]]):
    """Waveforms (each ``(T_i,)`` float32 mono at one sample rate) with int64 labels ``(N,)``."""

    def __init__(self, waves: Sequence[Tensor], labels: Tensor, *, names: Sequence[str], source: str = "") -> None:
        if len(waves) != labels.shape[0] or len(names) != len(waves):
            raise DataError(f"{source}: {len(waves)} waveforms, {labels.shape[0]} labels, {len(names)} names")
        for wave, name in zip(waves, names):
            if wave.ndim != 1 or wave.numel() == 0:
                raise DataError(f"{name}: expected a non-empty mono waveform, got shape {tuple(wave.shape)}")
        self.waves, self.labels, self.names = list(waves), labels.long(), list(names)

    def __len__(self) -> int:
        return len(self.waves)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {"x": self.waves[index], "y": self.labels[index], "index": index}

    def __getitems__(self, indices: list[int]) -> dict[str, Any]:
        return pad_batch([self.waves[i] for i in indices], self.labels[torch.as_tensor(indices, dtype=torch.long)],
                         torch.as_tensor(indices, dtype=torch.long))


def pad_batch(waves: Sequence[Tensor], labels: Tensor, index: Tensor) -> dict[str, Any]:
    """Zero-pad to the longest waveform; ``padding_mask`` is True on the padded samples."""
    lengths = torch.tensor([w.numel() for w in waves])
    wave = torch.zeros(len(waves), int(lengths.max()))
    for row, w in enumerate(waves):
        wave[row, : w.numel()] = w
    padding = torch.arange(wave.shape[1]).unsqueeze(0) >= lengths.unsqueeze(1)
    return {"x": {"wave": wave, "padding_mask": padding}, "y": labels, "index": index}


def collate_audio(samples: Any) -> dict[str, Any]:
    if isinstance(samples, dict):  # already batched by __getitems__
        return samples
    return pad_batch([s["x"] for s in samples], torch.stack([torch.as_tensor(s["y"]) for s in samples]),
                     torch.as_tensor([s["index"] for s in samples]))


def make_bundle(train: AudioDataset | LazyAudioDataset, test: AudioDataset | LazyAudioDataset | None, *, sample_rate: int, num_classes: int,
                description: str, class_names: Sequence[str] | None = None) -> DataBundle:
    spec: dict[str, Any] = {"sample_rate": sample_rate, "num_classes": num_classes}
    if class_names is not None:
        spec["class_names"] = tuple(class_names)

    def raw(x: dict[str, Tensor]) -> Tensor:
        return mean_log_mel(x["wave"], x["padding_mask"], sample_rate=sample_rate)

    return DataBundle(train=train, test=test, collate=collate_audio, num_classes=num_classes, input_spec=spec,
                      raw_features=raw, description=description,
                      class_names=list(class_names) if class_names is not None else None)


def synthetic_audio(count: int, *, sample_rate: int, num_classes: int, seed: int) -> AudioDataset:
    """Class-dependent tones in noise, 0.3–1.0 s long: the right shapes without touching any file."""
    generator = torch.Generator().manual_seed(seed)
    waves, labels = [], torch.arange(count) % num_classes
    for i in range(count):
        length = int(sample_rate * (0.3 + 0.7 * torch.rand(1, generator=generator).item()))
        t = torch.arange(length) / sample_rate
        tone = 0.3 * torch.sin(2 * torch.pi * (200 + 150 * int(labels[i])) * t)
        waves.append(tone + 0.05 * torch.randn(length, generator=generator))
    return AudioDataset(waves, labels, names=[f"synthetic[{i}]" for i in range(count)], source="synthetic")


@DATASETS.register("fsdd", modality="speech", description="Free Spoken Digit Dataset: 3,000 clips, digit or speaker")
def fsdd(*, label: Literal["digit", "speaker"] = "digit", sample_rate: int = 8000, max_train: int | None = None,
         data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0) -> DataBundle:
    """FSDD at ``data_root/fsdd/fsdd.npz``: 8 kHz int16 PCM, official 2,700 / 300 split (index 0–4 = test).

    ``label`` picks the target: the spoken digit (10 classes) or the speaker (6 classes).
    """
    classes = 10 if label == "digit" else 6
    if synthetic is not None:
        fake = synthetic_audio(synthetic, sample_rate=sample_rate, num_classes=classes, seed=seed)
        return make_bundle(fake, fake, sample_rate=sample_rate, num_classes=classes, description="synthetic FSDD",
                           class_names=[str(d) for d in range(10)] if label == "digit" else None)
    path = data_root / "fsdd" / "fsdd.npz"
    if not path.is_file():
        raise DataError(f"FSDD not found at {path}: set OMNISSL_DATA_DIR to the shared datasets folder")
    arrays = load_fsdd(path=path, label=label)
    audio, offsets, lengths = arrays["audio"], arrays["offsets"], arrays["lengths"]
    targets, split, names = arrays[label], arrays["split"], arrays["filename"]
    file_rate = int(arrays["sample_rate"])
    speaker_names = [str(s) for s in arrays["speaker_names"]]
    y = torch.from_numpy(targets.astype(np.int64))
    names = [str(n) for n in names]

    def subset(rows: np.ndarray) -> AudioDataset:
        rows_list = rows.tolist()
        waves = [resample(torch.from_numpy(audio[offsets[r]:offsets[r] + lengths[r]].astype(np.float32) / 32768.0),
                          file_rate, sample_rate) for r in rows_list]
        return AudioDataset(waves, y[rows], names=[names[r] for r in rows_list], source=str(path))

    train_rows, test_rows = np.flatnonzero(split == 0), np.flatnonzero(split == 1)
    if max_train is not None:  # a seeded subset, so small runs still cover every digit and speaker
        order = torch.randperm(len(train_rows), generator=torch.Generator().manual_seed(seed)).numpy()
        train_rows = np.sort(train_rows[order[:max_train]])
    class_names = [str(d) for d in range(10)] if label == "digit" else speaker_names
    test_set = subset(test_rows) if len(test_rows) else None
    return make_bundle(subset(train_rows), test_set, sample_rate=sample_rate, num_classes=classes,
                       description=f"FSDD ({label}), official split", class_names=class_names)


def _label_table(train_labels: Sequence[str], test_labels: Sequence[str], test_names: Sequence[str],
                 source: str) -> tuple[list[str], Tensor, Tensor]:
    classes = sorted(set(train_labels))
    lookup = {name: i for i, name in enumerate(classes)}
    for label, name in zip(test_labels, test_names):
        if label not in lookup:
            raise DataError(f"{name}: label '{label}' does not occur in the training split of {source}")
    return (classes, torch.tensor([lookup[v] for v in train_labels], dtype=torch.long),
            torch.tensor([lookup[v] for v in test_labels], dtype=torch.long))


def _stratified_split(labels: Sequence[str], *, test_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for label in sorted(set(labels)):
        members = [i for i, v in enumerate(labels) if v == label]
        order = torch.randperm(len(members), generator=generator).tolist()
        cut = int(round(len(members) * test_fraction))
        test += [members[j] for j in order[:cut]]
        train += [members[j] for j in order[cut:]]
    return sorted(train), sorted(test)


def _split_set(files: Sequence[Path], labels: Tensor, *, sample_rate: int, in_memory: bool,
               source: str, on_error: OnError = "raise") -> AudioDataset | LazyAudioDataset:
    """Every clip decoded now, or (``in_memory`` false) only the paths kept and each clip decoded on fetch."""
    if not in_memory:
        return LazyAudioDataset(files, labels, sample_rate=sample_rate, source=source, on_error=on_error)
    return AudioDataset([read_audio(Path(f), sample_rate=sample_rate) for f in files], labels,
                        names=[str(f) for f in files], source=source)


def _folder_label(path: Path, base: Path, label_from: str, regex: re.Pattern[str] | None) -> str:
    if label_from == "folder":
        parts = path.relative_to(base).parts
        if len(parts) < 2:
            raise DataError(f"{path}: label_from=folder needs ROOT/<label>/<file>, the file sits directly in {base}")
        return parts[0]
    assert regex is not None
    match = regex.search(path.name)
    if match is None:
        raise DataError(f"{path}: file name does not match label pattern '{regex.pattern}'")
    return match.group("label")


@DATASETS.register("audio_folder", modality="speech", description="wav/flac/ogg folders; label from folder or name")
def audio_folder(*, root: str, label_from: Literal["folder", "pattern"] = "folder", pattern: str | None = None,
                 sample_rate: int = 16000, test_fraction: float = 0.2, in_memory: bool | None = None,
                 data_root: Path = Path("."), synthetic: int | None = None, seed: int = 0,
                 on_error: OnError = "raise") -> DataBundle:
    """``root/[train|test]/<label>/<file>`` (or label from ``pattern``, a regex with a ``(?P<label>…)`` group).

    Without ``train``/``test`` sub-folders the files are split, stratified by label, with ``test_fraction``.
    ``in_memory``: ``true`` decodes every clip once; ``false`` keeps the paths and decodes per sample in the
    workers; unset: in memory when the files add up to at most ``IN_MEMORY_FILE_BYTES`` (``omnissl_speech.lazy``).
    ``on_error: skip`` (lazy only) leaves undecodable clips out of their batches, counted in ``data/skipped``.
    """
    if label_from == "pattern" and (pattern is None or "(?P<label>" not in pattern):
        raise ConfigError("data.pattern: label_from=pattern needs a regex with a named group, e.g. '^(?P<label>\\d)_'")
    if synthetic is not None:
        fake = synthetic_audio(synthetic, sample_rate=sample_rate, num_classes=2, seed=seed)
        return make_bundle(fake, fake, sample_rate=sample_rate, num_classes=2, description="synthetic audio folder")
    base = resolve_data_path(data_root, root, key="data.root")
    if not base.is_dir():
        raise DataError(f"audio folder not found: {base}")
    try:
        regex = re.compile(pattern) if pattern else None
    except re.error as error:
        raise ConfigError(f"data.pattern: not a regular expression ({error})") from error

    def scan(folder: Path) -> tuple[list[Path], list[str]]:
        files = audio_files(folder=folder)
        return files, [_folder_label(p, folder, label_from, regex) for p in files]

    has_train, has_test = (base / "train").is_dir(), (base / "test").is_dir()
    if has_test and not has_train:
        raise DataError(f"{base}: has a 'test' folder but no 'train' folder")
    if has_train:
        # files beside train/ and test/ would otherwise be left out without a word
        stray = sorted(p for p in base.rglob("*") if p.is_file() and p.relative_to(base).parts[0] not in
                       ("train", "test") and p.suffix.lower() in AUDIO_SUFFIXES)
        if stray:
            raise DataError(f"{stray[0]}: audio outside {base}/train and {base}/test ({len(stray)} such files)")
    if has_train and has_test:
        (tr_f, tr_l), (te_f, te_l) = scan(base / "train"), scan(base / "test")
    else:  # ROOT/train alone is split like a flat tree (its sub-folders are the labels, not "train")
        files, labels = scan(base / "train" if has_train else base)
        tr, te = _stratified_split(labels, test_fraction=test_fraction, seed=seed)
        tr_f, tr_l = [files[i] for i in tr], [labels[i] for i in tr]
        te_f, te_l = [files[i] for i in te], [labels[i] for i in te]
    classes, y_train, y_test = _label_table(tr_l, te_l, [str(f) for f in te_f], str(base))
    in_memory = decide_in_memory(in_memory=in_memory, files=tr_f, on_error=on_error)
    made = {"sample_rate": sample_rate, "in_memory": in_memory, "source": str(base), "on_error": on_error}
    how = "" if in_memory else " (decoded per sample)"
    return make_bundle(_split_set(tr_f, y_train, **made), _split_set(te_f, y_test, **made) if te_f else None,
                       sample_rate=sample_rate, num_classes=len(classes), description=f"audio folder {base}{how}",
                       class_names=classes)


@DATASETS.register("audio_manifest", modality="speech", description="manifest CSVs (path,label[,speaker])")
def audio_manifest(*, train: str, test: str | None = None, label: Literal["label", "speaker"] = "label",
                   sample_rate: int = 16000, in_memory: bool | None = None, data_root: Path = Path("."),
                   synthetic: int | None = None, seed: int = 0, on_error: OnError = "raise") -> DataBundle:
    """``label`` picks the CSV column used as the class (``label`` or ``speaker``); ``in_memory`` as in
    :func:`audio_folder` (the manifest rows are checked up front either way: every file exists); ``on_error``
    as in :func:`audio_folder`."""
    if synthetic is not None:
        fake = synthetic_audio(synthetic, sample_rate=sample_rate, num_classes=2, seed=seed)
        return make_bundle(fake, fake, sample_rate=sample_rate, num_classes=2, description="synthetic manifest")
    tr_files, tr_labels = read_manifest(data_root=data_root, value=train, key="data.train", column=label)
    te_files, te_labels = (read_manifest(data_root=data_root, value=test, key="data.test", column=label) if test
                           else ([], []))
    classes, y_train, y_test = _label_table(tr_labels, te_labels, [str(f) for f in te_files], train)
    in_memory = decide_in_memory(in_memory=in_memory, files=tr_files, on_error=on_error)
    train_set = _split_set(tr_files, y_train, sample_rate=sample_rate, in_memory=in_memory, source=train,
                           on_error=on_error)
    test_set = None
    if te_files:
        test_set = _split_set(te_files, y_test, sample_rate=sample_rate, in_memory=in_memory, source=str(test),
                              on_error=on_error)
    return make_bundle(train_set, test_set, sample_rate=sample_rate, num_classes=len(classes),
                       description=f"manifest {train}{'' if in_memory else ' (decoded per sample)'}",
                       class_names=classes)

from omnissl_speech import shard_codec  # noqa: E402,F401  (registers the shard field codec; here, as the plugin imports this module)
